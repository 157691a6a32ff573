"""Which module speaks which dialect: a new kind is one module and one line here."""

from __future__ import annotations

from orchestrator.core.models import Provider
from orchestrator.core.provider import RunsProvider
from orchestrator.core.settings import Settings
from orchestrator.providers.assistants import AssistantsProvider


def make_provider(provider: Provider, settings: Settings, *, max_connections: int) -> RunsProvider:
    """The client for a job's `provider` field."""
    match provider:
        case Provider.ASSISTANTS:
            return AssistantsProvider(settings, max_connections=max_connections)
