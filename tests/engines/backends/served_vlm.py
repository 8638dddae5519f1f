"""Test helper process (not a test module): the real `transformers serve` for one local model, behind TLS
and a bearer token, as a site's front (or vLLM's --api-key / --ssl-certfile) would put it.

    python served_vlm.py MODEL_DIR PORT CERT KEY TOKEN

`transformers serve` itself has no TLS or key options, so this wraps the uvicorn config it builds: TLS
from the given certificate, and requests without `Authorization: Bearer TOKEN` answered 401 the way
OpenAI-compatible servers answer a wrong key.
"""

from __future__ import annotations

import json
import sys

import uvicorn

MODEL, PORT, CERT, KEY, TOKEN = (sys.argv[1:6] + [""] * 5)[:5]


class BearerToken:
    """ASGI middleware: HTTP requests need the token; lifespan events pass through."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization", b"").decode() != f"Bearer {TOKEN}":
                body = json.dumps({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                             "code": "invalid_api_key"}}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class TlsConfig(uvicorn.Config):
    def __init__(self, app, **kwargs) -> None:
        kwargs.update(ssl_certfile=CERT, ssl_keyfile=KEY)
        super().__init__(BearerToken(app), **kwargs)


if __name__ == "__main__":  # transformers starts the model's process by spawn, which re-imports this file
    uvicorn.Config = TlsConfig  # the one place transformers' `Serve.run` builds its server config

    from transformers.cli.serve import Serve

    Serve(force_model=MODEL, host="127.0.0.1", port=int(PORT), device="cpu", log_level="warning")
