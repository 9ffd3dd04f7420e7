"""Speed, latency and accuracy benchmarks (run as ``python -m benchmarks.<name>``)."""
