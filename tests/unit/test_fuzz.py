"""Fuzzing the two parsers that take outside input: the Avro decoder and the config loader.

Whatever the bytes or the document, the only outcomes are a value or the typed error the
caller handles (``DecodeError`` -> DLQ, ``ConfigError`` -> exit naming the key): never
another exception, never a hang (each example runs under an alarm as well as a deadline).
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.codec import DETECTIONS, FRAME, HEADER_BYTES, MAGIC, default_codec
from pipeline.config import Settings, load_config, parse_settings
from pipeline.exceptions import ConfigError, DecodeError

HANG_S = 5.0
FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

FRAME_VALUE = dict(camera_id="cam-1", stream_id="s1", seq=7, capture_ts_ms=1_700_000_000_123,
                   width=768, height=576, encoding="jpeg", data=b"\xff\xd8jpeg")
DETECTIONS_VALUE = dict(camera_id="c", stream_id="s", seq=1, capture_ts_ms=5, width=10, height=10, model_name="m",
                        model_version="1", inference_ms=1.5, batch_size=4,
                        boxes=[dict(class_id=0, score=0.5, x1=0.125, y1=0.25, x2=0.375, y2=0.5)] * 3)


@contextmanager
def no_hang(seconds: float = HANG_S) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging: hypothesis' deadline only judges finished calls."""
    def _alarm(*_: Any) -> None:
        raise TimeoutError(f"no result within {seconds}s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _decode_or_decode_error(data: bytes) -> None:
    with no_hang():
        try:
            name, value = default_codec().decode(data)
        except DecodeError:
            return
    assert isinstance(name, str) and isinstance(value, dict)


def _valid_messages() -> list[bytes]:
    codec = default_codec()
    return [codec.encode(FRAME, FRAME_VALUE), codec.encode(DETECTIONS, DETECTIONS_VALUE)]


def _fingerprints() -> list[bytes]:
    return sorted({m[2:HEADER_BYTES] for m in _valid_messages()} | {
        default_codec()._current[n].fingerprint for n in default_codec().record_names})


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    _decode_or_decode_error(data)


@FUZZ
@given(st.sampled_from(_fingerprints()), st.binary(max_size=512))
def test_a_known_header_with_any_body_decodes_or_raises_decode_error(fp: bytes, body: bytes) -> None:
    _decode_or_decode_error(MAGIC + fp + body)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message with bytes flipped, inserted, deleted or cut off (header kept or not)."""
    data = bytearray(draw(st.sampled_from(_valid_messages())))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "varint"]))
        start = HEADER_BYTES if draw(st.booleans()) and len(data) > HEADER_BYTES else 0
        pos = draw(st.integers(start, max(start, len(data) - 1)))
        if kind == "flip" and data:
            data[min(pos, len(data) - 1)] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "varint":  # a huge or negative length/count prefix (zig-zag varint)
            data[pos:pos + 1] = draw(st.sampled_from([b"\xff\xff\xff\xff\x0f", b"\x01", b"\xfe\xff\xff\xff\xff\x01"]))
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_valid_messages_decode_or_raise_decode_error(data: bytes) -> None:
    _decode_or_decode_error(data)


# --- config -------------------------------------------------------------------------------

SECTIONS = sorted(Settings.model_fields)
KEYS = sorted({k for s in SECTIONS for k in getattr(Settings.model_fields[s].annotation, "model_fields", {})}
              | {"id", "source", "rules", "type", "name", "points", "polygon", "classes", "fps"})
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["PLAINTEXT", "SASL_SSL", "line", "zone", "1e309", "-1"]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=4)),
    max_leaves=20,
)
documents = st.one_of(
    values,
    st.dictionaries(st.sampled_from(SECTIONS), values, max_size=4),
    st.dictionaries(st.sampled_from(SECTIONS), st.dictionaries(st.sampled_from(KEYS), values, max_size=4), max_size=4),
)


def _settings_or_config_error(call: Any) -> None:
    with no_hang():
        try:
            result = call()
        except ConfigError as exc:
            assert str(exc)  # says something
            return
    assert isinstance(result, Settings)


@FUZZ
@given(documents)
def test_parse_settings_returns_settings_or_raises_config_error(raw: Any) -> None:
    _settings_or_config_error(lambda: parse_settings(raw, "<fuzz>", environ={}))


@FUZZ
@given(documents, st.dictionaries(st.sampled_from(["CAMCOUNT_KAFKA_SECURITY_PROTOCOL", "CAMCOUNT_CLICKHOUSE_PORT",
                                                   "CAMCOUNT_KAFKA_SASL_PASSWORD", "CAMCOUNT_CLICKHOUSE_SECURE"]),
                                  st.text(max_size=12), max_size=3))
def test_env_overrides_on_any_document_give_settings_or_config_error(raw: Any, environ: dict[str, str]) -> None:
    _settings_or_config_error(lambda: parse_settings(raw, "<fuzz>", environ=environ))


yaml_text = st.one_of(
    st.text(max_size=300),
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.lists(st.sampled_from(["kafka:", "  bootstrap_servers: x", "cameras:", "  - id: a", "    source: b",
                              "&a [*a]", "!!python/object:os.system", "? [1, 2]\n: 3", "{", "- ", "\t", "%YAML 9",
                              "x: &anchor {a: 1}", "y: *anchor", "<<: *anchor", "topics: {partitions: 0}"]),
             max_size=12).map("\n".join),
)


@settings(FUZZ, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(yaml_text)
def test_load_config_on_any_text_returns_settings_or_raises_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "camcount.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))  # lone surrogates: not valid UTF-8 either
    _settings_or_config_error(lambda: load_config(path, environ={}))


@FUZZ
@given(st.binary(max_size=300))
def test_load_config_on_any_bytes_returns_settings_or_raises_config_error(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "camcount.yaml"
        path.write_bytes(data)
        _settings_or_config_error(lambda: load_config(path, environ={}))
