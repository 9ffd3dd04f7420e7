"""Whisper tiny.en for aim-edge: CTranslate2 weights -> Hugging Face -> ONNX int8 second pass.

- :mod:`export.whisper.ct2` -- numpy reader of CTranslate2 ``model.bin``;
- :mod:`export.whisper.convert` -- mapping onto ``WhisperForConditionalGeneration`` and the
  token-parity check against CTranslate2;
- :mod:`export.whisper.export` -- ``python -m export.whisper --out DIR``: optimum ONNX export,
  INT8 dynamic per-channel quantization, parity figures and the bundle's ``asr`` fragment;
- :mod:`export.whisper.speech` -- real speech with transcripts (asterisk prompts, FSDD) and WER;
- :mod:`export.whisper.attach` -- ``python -m export.whisper.attach``: put an export into a
  bundle as its validated ``asr`` component;
- :mod:`export.whisper.transcribe` -- ``python -m export.whisper.transcribe``: teacher
  transcripts of real speech, cached by audio sha256 so training does not re-run Whisper.

The runtime side is :mod:`aim_edge.asr.whisper` (no torch).
"""
