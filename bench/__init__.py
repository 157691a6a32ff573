"""Benchmarks: real processes on one machine, each with its results and the command to rerun it.

`python -m bench.cancel_throughput` times one bulk cancellation through real worker processes
against the simulator; `bench/RESULTS.md` holds its figures and how to read them.
`python -m bench.peers` times the two peers a user would otherwise reach for (the official
SDK, one run after another and with asyncio) against the same simulator.
`python -m bench.compare` runs ours and both peers for both scenarios of issue 3 (throughput,
and under the provider's rate limit) in one go, and checks the issue's targets.
"""
