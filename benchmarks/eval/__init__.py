"""Evaluation harness: a bundle through the aim-edge runtime (streaming), beside real peers.

    python -m benchmarks.eval --model BUNDLE --set NAME [--backend onnxruntime] ...

See :mod:`benchmarks.eval.__main__` (``--help``) for the sets, the peers and the tables;
metrics are :mod:`aim_edge.metrics`, shared with ``export/evaluate.py``.
"""
