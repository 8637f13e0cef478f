"""Benchmarks: scripts that print figures. `python -m benchmarks.run` runs them all.

How benchmarks/run.py reads a benchmark (benchmarks/<name>.py, run as `python benchmarks/<name>.py`
from the repository root, in a fresh process so its peak memory is its own):
  - if the script writes a JSON object to the path in the environment variable
    STEPWISE_BENCH_JSON, that object is its figures ({"figure": value, ...});
  - otherwise every stdout line of the form `figure: value` is a figure (and a stdout line that
    is a JSON object contributes its scalar items).
"""
