"""Locating model bundles. The default bundle ships inside the package as data
(``aim_edge/models/default``) and is found with :mod:`importlib.resources`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_BUNDLE = "default"


def default_bundle_path() -> Path | None:
    """Path of the shipped default bundle, or ``None`` while none is shipped."""
    root = resources.files("aim_edge").joinpath("models", DEFAULT_BUNDLE, "manifest.json")
    if root.is_file():
        return Path(str(root)).parent
    return None
