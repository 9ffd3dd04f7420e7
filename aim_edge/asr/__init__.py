"""Speech recognition second passes for aim-edge (torch-free).

:mod:`aim_edge.asr.whisper` holds the Whisper tiny.en second pass
(:class:`~aim_edge.asr.whisper.WhisperSecondPass`); import it from there. This package imports
nothing heavy, so ``import aim_edge.asr`` costs nothing.
"""

__all__: list[str] = []
