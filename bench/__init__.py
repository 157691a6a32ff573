"""Benchmarks: real processes on one machine, each with its results and the command to rerun it.

`python -m bench.cancel_throughput` times one bulk cancellation through real worker processes
against the simulator; `bench/RESULTS.md` holds its figures and how to read them.
"""
