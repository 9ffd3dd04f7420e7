"""Whisper tiny.en for aim-edge: CTranslate2 weights -> Hugging Face -> ONNX int8 second pass.

- :mod:`export.whisper.ct2` -- numpy reader of CTranslate2 ``model.bin``;
- :mod:`export.whisper.convert` -- mapping onto ``WhisperForConditionalGeneration`` and the
  token-parity check against CTranslate2;
- :mod:`export.whisper.export` -- ``python -m export.whisper --out DIR``: optimum ONNX export,
  INT8 dynamic per-channel quantization, parity figures and the bundle's ``asr`` fragment;
- :mod:`export.whisper.speech` -- real speech with transcripts (asterisk prompts, FSDD) and WER.

The runtime side is :mod:`aim_edge.asr.whisper` (no torch).
"""
