from __future__ import annotations

import pytest

from pipeline.config import parse_settings
from pipeline.exceptions import ConfigError
from pipeline.ingest.publisher import frame_producer_config
from pipeline.ingest.worker import select_cameras

CAMERAS = [
    {"id": "gate", "source": "rtsp://10.0.0.5/s1", "fps": 5},
    {"id": "yard", "source": "/videos/yard.mp4", "fps": 2, "loop": True},
]


def test_defaults_and_per_camera_overrides():
    settings = parse_settings({
        "cameras": CAMERAS,
        "ingest": {"jpeg_quality": 80, "cameras": {"gate": {"jpeg_quality": 95, "when_full": "drop_oldest"}}},
    }, environ={})
    cfg = settings.ingest
    assert (cfg.jpeg_quality_for("gate"), cfg.when_full_for("gate")) == (95, "drop_oldest")
    assert (cfg.jpeg_quality_for("yard"), cfg.when_full_for("yard")) == (80, "block")


@pytest.mark.parametrize(
    ("ingest", "message"),
    [
        ({"jpeg_quality": 0}, "ingest.jpeg_quality"),  # out of range
        ({"when_full": "drop_newest"}, "ingest.when_full"),  # not a policy we have
        ({"compression": "gzip"}, "ingest.compression"),  # pointless for JPEG, not offered
        ({"jpeg_qualty": 80}, "ingest.jpeg_qualty: unknown key"),  # typo
        ({"cameras": {"gate": {"fps": 3}}}, "ingest.cameras.gate.fps: unknown key"),  # fps lives on the camera
    ],
)
def test_bad_values_name_the_key(ingest, message):
    with pytest.raises(ConfigError, match=message):
        parse_settings({"cameras": CAMERAS, "ingest": ingest}, environ={})


def test_overrides_for_unknown_cameras_are_errors():
    settings = parse_settings({"cameras": CAMERAS, "ingest": {"cameras": {"gaet": {"jpeg_quality": 90}}}}, environ={})
    with pytest.raises(ConfigError, match="ingest.cameras.gaet"):
        select_cameras(settings, None)


def test_select_cameras():
    settings = parse_settings({"cameras": CAMERAS}, environ={})
    assert [c.id for c in select_cameras(settings, None)] == ["gate", "yard"]
    assert [c.id for c in select_cameras(settings, ["yard", "yard"])] == ["yard"]
    with pytest.raises(ConfigError, match="no camera 'nope'"):
        select_cameras(settings, ["nope"])
    with pytest.raises(ConfigError, match="no cameras to ingest"):
        select_cameras(parse_settings({}, environ={}), None)


def test_producer_is_idempotent_uncompressed_and_bounded():
    settings = parse_settings({"ingest": {"producer_buffer_kbytes": 1024}}, environ={})
    conf = frame_producer_config(settings, settings.ingest)
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["compression.type"] == "none"
    assert conf["queue.buffering.max.kbytes"] == 1024
    assert conf["message.max.bytes"] == settings.topics.max_message_bytes
