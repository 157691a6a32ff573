"""`python -m orchestrator.devkit.simulator [--host H] [--port P] [--config JSON]`: serve until ^C.

`--config` takes the `SimulatorConfig` knobs as a JSON object, e.g.
`--config '{"run_duration_s": 5, "rate_limit_rps": 200}'`; they can be changed later with
`PATCH /_sim/config`.
"""

from __future__ import annotations

import argparse

from orchestrator.devkit.simulator.config import SimulatorConfig
from orchestrator.devkit.simulator.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.devkit.simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--config", default="{}", help="SimulatorConfig knobs as JSON")
    args = parser.parse_args(argv)
    serve(SimulatorConfig.model_validate_json(args.config), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
