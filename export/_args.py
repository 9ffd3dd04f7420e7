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
