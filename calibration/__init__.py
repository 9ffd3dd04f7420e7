"""Calibration for the export stage (run from a checkout: ``python -m calibration ...``).

* :mod:`calibration.metrics` -- the streaming metrics the runtime policy implies (event and
  speak-now activations with hysteresis and refractory time, proactive F1, false alerts per
  hour, greedy-CTC CER); numpy only.
* :mod:`calibration.thresholds` -- speak-now and per-event thresholds for a target false-alert
  rate per hour on dev data, with the recall reached at that rate.
* :mod:`calibration.streams` -- choosing representative calibration streams (coverage of event
  classes, speech and quiet audio) and capturing the real cache states a streaming model
  passes from chunk to chunk (the samples static INT8 calibration needs).

Nothing here imports torch: the model outputs come in as numpy arrays, and state capture runs
any step function (the fp32 ONNX artifact in onnxruntime by default).
"""
