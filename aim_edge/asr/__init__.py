"""Speech recognition second passes for aim-edge (torch-free).

:mod:`aim_edge.asr.whisper` holds the Whisper tiny.en second pass
(:class:`~aim_edge.asr.whisper.WhisperSecondPass`); import it from there. This package imports
nothing heavy, so ``import aim_edge.asr`` costs nothing.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["bundle_asr_dir"]


def bundle_asr_dir(model: str | Path | None) -> Path | None:
    """The validated ``asr`` component folder of a bundle (None = the shipped default), or None
    when the bundle has none. Hashes are checked when the engine loads the bundle."""
    from ..bundle import load_bundle

    if model is None:
        from ..bundles import default_bundle_path

        model = default_bundle_path()
        if model is None:
            return None
    return load_bundle(model, verify_hashes=False).asr_dir
