"""`runctl serve`: the HTTP API and the dashboard over the library (no Celery here)."""

from orchestrator.api.app import create_app

__all__ = ["create_app"]
