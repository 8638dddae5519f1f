from __future__ import annotations

import numpy as np
import pytest

from engines.worker.protocol import ProtocolError, decode, encode


def test_arrays_and_scalars_round_trip_through_one_json_line() -> None:
    img = np.arange(12, dtype=np.uint16).reshape(3, 4)
    line = encode({"type": "job", "params": {"images": [img], "seed": np.int64(3), "flag": np.bool_(True)}})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    msg = decode(line)
    np.testing.assert_array_equal(msg["params"]["images"][0], img)
    assert msg["params"]["images"][0].dtype == np.uint16
    assert msg["params"]["seed"] == 3 and msg["params"]["flag"] is True


def test_garbage_is_a_protocol_error() -> None:
    for bad in (b"hello\n", b"[1, 2]\n", b'{"no_type": 1}\n'):
        with pytest.raises(ProtocolError):
            decode(bad)
    with pytest.raises(TypeError, match="cannot send object"):
        encode({"type": "x", "v": object()})
