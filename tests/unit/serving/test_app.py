"""Request bodies: Content-Encoding undone within the size limit."""

from __future__ import annotations

import gzip
import zlib

import pytest

from pipeline.serving.app import decompress
from pipeline.serving.exceptions import BadRequest, PayloadTooLarge, UnsupportedMediaType

BODY = b'{"inputs": []}' * 10


@pytest.mark.parametrize("encoded, encoding, limit, expected", [
    (BODY, "", 1000, BODY),  # no encoding
    (gzip.compress(BODY), "gzip", 1000, BODY),
    (zlib.compress(BODY), "Deflate", 1000, BODY),  # tritonclient's deflate is zlib format
    (gzip.compress(b"\x00" * 10_000_000), "gzip", 1000, PayloadTooLarge),  # a zip bomb stops at the limit
    (gzip.compress(BODY)[:-12], "gzip", 1000, BadRequest),  # truncated
    (b"not gzip", "gzip", 1000, BadRequest),
    (BODY, "br", 1000, UnsupportedMediaType),
])
def test_decompress(encoded, encoding, limit, expected) -> None:
    if isinstance(expected, bytes):
        assert decompress(encoded, encoding, limit) == expected
    else:
        with pytest.raises(expected):
            decompress(encoded, encoding, limit)
