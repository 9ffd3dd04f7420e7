"""Argument checks shared by the export tools, run before any model loads (minutes of work)."""

from __future__ import annotations

import argparse


def require_paths(parser: argparse.ArgumentParser, args: argparse.Namespace,
                  *dests: str) -> None:
    """A usage error naming the first of ``dests`` (argparse dest names) given as a path that
    does not exist; unset ones are skipped."""
    for dest in dests:
        path = getattr(args, dest)
        if path is not None and not path.exists():
            parser.error(f"--{dest.replace('_', '-')} {path}: no such file or folder")


def require_positive(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     *dests: str) -> None:
    """A usage error naming the first of ``dests`` given as a number that is not > 0; unset
    ones (None) are skipped."""
    for dest in dests:
        value = getattr(args, dest)
        if value is not None and not value > 0:
            parser.error(f"--{dest.replace('_', '-')} {value}: must be > 0")
