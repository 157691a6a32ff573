"""The `azure-ai-agents` kind: Azure AI Foundry Agent Service.

The Assistants protocol at the project endpoint (`{project_endpoint}/threads/...`), with
`api-version` on every request and Entra ID tokens only (scope ai.azure.com). Its runs
have the Assistants statuses but never `incomplete`.
"""

from __future__ import annotations

from dataclasses import replace

from orchestrator.core.connections import Auth, Connection
from orchestrator.core.models import Kind
from orchestrator.providers.assistants import AssistantsProvider
from orchestrator.providers.base import ASSISTANTS_DIALECT, BuildOptions, KindSpec, RunStatus
from orchestrator.providers.credentials import Access

DEFAULT_API_VERSION = "v1"
SCOPE = "https://ai.azure.com/.default"
DIALECT = replace(ASSISTANTS_DIALECT, terminal=ASSISTANTS_DIALECT.terminal - {RunStatus.INCOMPLETE})


def _build(connection: Connection, access: Access, options: BuildOptions) -> AssistantsProvider:
    return AssistantsProvider(
        base_url=connection.base_url,
        access=access,
        options=options,
        dialect=DIALECT,
        params={"api-version": connection.api_version or DEFAULT_API_VERSION},
    )


SPEC = KindSpec(
    kind=Kind.AZURE_AI_AGENTS,
    dialect=DIALECT,
    build=_build,
    key_headers=lambda key: {"Authorization": f"Bearer {key}"},
    auths=frozenset({Auth.AZURE}),
    default_auth=Auth.AZURE,
    default_api_version=DEFAULT_API_VERSION,
    azure_scope=SCOPE,
)
