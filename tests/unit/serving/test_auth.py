"""API keys: bearer or X-API-Key, digests in config, never a key in the error."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from pipeline.serving.auth import Authenticator
from pipeline.serving.config import ApiKeyConfig, ServingConfig
from pipeline.serving.exceptions import Unauthorized

KEY_A, KEY_B = "alpha-key-0123456789", "bravo-key-0123456789"
KEYS = [
    ApiKeyConfig(id="a", key=KEY_A, rate_limit_per_s=5),
    ApiKeyConfig(id="b", sha256=hashlib.sha256(KEY_B.encode()).hexdigest()),
]


@pytest.mark.parametrize("headers, expected", [
    ({"authorization": f"Bearer {KEY_A}"}, "a"),  # bearer token
    ({"authorization": f"bearer  {KEY_A} "}, "a"),  # scheme is case-insensitive, spaces trimmed
    ({"x-api-key": KEY_B}, "b"),  # key configured by its digest only
    ({}, "missing credentials"),
    ({"authorization": f"Basic {KEY_A}"}, "must be 'Bearer <key>'"),
    ({"authorization": "Bearer " + KEY_A[:-1]}, "invalid API key"),
    ({"x-api-key": KEY_A + KEY_B}, "invalid API key"),
])
def test_authenticate(headers, expected) -> None:
    auth = Authenticator(KEYS, allow_anonymous=False)
    if expected in ("a", "b"):
        client = auth.authenticate(headers, "10.0.0.1")
        assert client.id == expected and client.rate_key == f"key:{expected}"
    else:
        with pytest.raises(Unauthorized) as info:
            auth.authenticate(headers, "10.0.0.1")
        assert expected in info.value.message and KEY_A not in info.value.message
        assert info.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_per_key_rate_and_anonymous_by_address() -> None:
    assert Authenticator(KEYS, False).authenticate({"x-api-key": KEY_A}, "x").rate_limit_per_s == 5
    anonymous = Authenticator([], allow_anonymous=True).authenticate({}, "10.0.0.9")
    assert anonymous.id == "anonymous" and anonymous.rate_key == "addr:10.0.0.9"


@pytest.mark.parametrize("raw, words", [
    ({"api_keys": [{"id": "a"}]}, "exactly one of 'key' or 'sha256'"),
    ({"api_keys": [{"id": "a", "key": "short"}]}, "at least 16"),
    ({"api_keys": [{"id": "a", "key": KEY_A}, {"id": "a", "key": KEY_B}]}, "duplicate api_keys ids"),
    ({"api_keys": [{"id": "a", "key": KEY_A}, {"id": "b", "key": KEY_A}]}, "same key"),
    ({"tls_cert_file": "cert.pem"}, "tls_key_file"),
])
def test_config_refuses(raw, words) -> None:
    with pytest.raises(ValidationError) as info:
        ServingConfig.model_validate(raw)
    assert words in str(info.value)


def test_keys_are_not_in_the_config_repr() -> None:
    config = ServingConfig.model_validate({"api_keys": [{"id": "a", "key": KEY_A}]})
    assert KEY_A not in repr(config) and KEY_A not in str(config.model_dump())
