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


def _number(unit: str, *, allow_zero: bool) -> Callable[[str], float]:
    """A finite number of ``unit`` (seconds, milliseconds, ...) > 0, or >= 0 with
    ``allow_zero`` (where 0 usually means "off")."""
    bound = ">= 0" if allow_zero else "> 0"

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{text} must be a number of {unit} {bound}")
        return value

    return convert


def positive_number(unit: str) -> Callable[[str], float]:
    """A finite number > 0 of ``unit``."""
    return _number(unit, allow_zero=False)


def nonneg_number(unit: str) -> Callable[[str], float]:
    """A finite number >= 0 of ``unit`` (0 usually means "off")."""
    return _number(unit, allow_zero=True)


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)
