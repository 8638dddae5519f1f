"""The engine worker process: runs one backend's jobs off the GUI process (see protocol and server)."""

from engines.worker.protocol import PROTOCOL_VERSION, ProtocolError, decode, encode

WORKER_MODULE = "engines.worker"

__all__ = ["PROTOCOL_VERSION", "WORKER_MODULE", "ProtocolError", "decode", "encode"]
