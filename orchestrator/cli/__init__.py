"""`runctl`: thin commands that parse, call one function and print."""

from orchestrator.cli.app import main

__all__ = ["main"]
