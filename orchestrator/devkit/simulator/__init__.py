"""A fast stand-in for an OpenAI-Assistants-compatible API, for demos, tests and benchmarks.

`start_in_thread(config)` serves it from a background thread and returns a handle with the
`base_url` to give an API client; `serve(config)` serves it in the foreground.
"""

from orchestrator.devkit.simulator.config import SimulatorConfig
from orchestrator.devkit.simulator.server import SimulatorHandle, make_app, serve, start_in_thread

__all__ = ["SimulatorConfig", "SimulatorHandle", "make_app", "serve", "start_in_thread"]
