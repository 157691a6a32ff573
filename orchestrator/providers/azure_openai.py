"""The `azure-openai-assistants` kind: classic Azure OpenAI Assistants.

The Assistants protocol under `{endpoint}/openai/`, with `api-version` on every request and
either an `api-key` header or an Entra ID token (scope cognitiveservices). Azure's 429s
carry `retry-after-ms`, `retry-after` and `x-ms-retry-after-ms` (read in `_http`).
"""

from __future__ import annotations

from orchestrator.core.connections import Auth, Connection
from orchestrator.core.models import Kind
from orchestrator.providers.assistants import AssistantsProvider
from orchestrator.providers.base import ASSISTANTS_DIALECT, BuildOptions, KindSpec
from orchestrator.providers.credentials import Access

DEFAULT_API_VERSION = "2024-05-01-preview"
SCOPE = "https://cognitiveservices.azure.com/.default"


def _build(connection: Connection, access: Access, options: BuildOptions) -> AssistantsProvider:
    return AssistantsProvider(
        base_url=connection.base_url.rstrip("/") + "/openai",
        access=access,
        options=options,
        params={"api-version": connection.api_version or DEFAULT_API_VERSION},
    )


SPEC = KindSpec(
    kind=Kind.AZURE_OPENAI_ASSISTANTS,
    dialect=ASSISTANTS_DIALECT,
    build=_build,
    key_headers=lambda key: {"api-key": key},
    auths=frozenset({Auth.KEY, Auth.AZURE}),
    default_api_version=DEFAULT_API_VERSION,
    azure_scope=SCOPE,
)
