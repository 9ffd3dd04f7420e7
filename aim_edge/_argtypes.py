"""argparse ``type=`` converters shared by the ``aim-edge`` subcommands.

Each names the bad value and what was expected, so ``aim-edge ... --threads 0`` fails with
a usage line, not a traceback.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["int_at_least", "nonneg_int", "nonneg_number", "positive_int", "positive_number"]


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An integer >= ``minimum``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be >= {minimum}")
        return value

    return convert


def positive_number(unit: str) -> Callable[[str], float]:
    """A finite number > 0 of ``unit`` (seconds, milliseconds, ...)."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be a number of {unit} > 0")
        return value

    return convert


def nonneg_number(unit: str) -> Callable[[str], float]:
    """A finite number >= 0 of ``unit`` (0 usually means "off")."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"{text} must be a number of {unit} >= 0")
        return value

    return convert


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)
