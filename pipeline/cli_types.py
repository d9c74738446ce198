"""Argument types shared by the sub-commands, so every command rejects bad values alike."""

from __future__ import annotations

import argparse


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number
