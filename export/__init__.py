"""Workstation tooling for aim-edge (run from a checkout, never installed).

- :mod:`export.model` — the streaming model (torch);
- :mod:`export.onnx_export` — ONNX export of the streaming step;
- :mod:`export.data` — streaming-native training and evaluation data: long labelled scenes
  (``python -m export.data build ...``; numpy + soxr + tqdm, no torch).
"""
