from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest

from pipeline.cli import build_parser
from pipeline.ingest.commands import start_ms_arg


def test_start_ms_takes_epoch_ms_or_now():
    assert start_ms_arg("1700000000000") == 1_700_000_000_000
    assert abs(start_ms_arg("now") - time.time() * 1000) < 5000


@pytest.mark.parametrize("value", ["-1", "yesterday", "1.5e12", ""])
def test_start_ms_rejects_other_values(value):
    with pytest.raises(argparse.ArgumentTypeError):
        start_ms_arg(value)


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", "--config", "cams.yaml"],  # after the sub-command, as the issue writes it
        ["--config", "cams.yaml", "ingest"],  # before it, as for every other sub-command
    ],
)
def test_config_is_accepted_before_or_after_the_subcommand(argv):
    args = build_parser().parse_args(argv + ["--camera", "a", "--camera", "b", "--max-frames", "7"])
    assert (args.config, args.cameras, args.max_frames, args.start_ms) == (Path("cams.yaml"), ["a", "b"], 7, None)


def test_max_frames_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ingest", "--max-frames", "0"])
    assert "expected a positive integer" in capsys.readouterr().err
