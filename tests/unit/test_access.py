"""API tokens: parsing `[[api.tokens]]`, roles, and checking a presented token."""

from __future__ import annotations

import pytest

from orchestrator.core.access import Role, hash_token, parse_tokens
from orchestrator.core.errors import ConfigurationError

DIGEST = hash_token("s3cret")


def test_a_configured_token_is_found_by_the_token_and_by_its_name() -> None:
    tokens = parse_tokens(
        {"api": {"tokens": [{"name": "bot", "role": "operator", "sha256": DIGEST}]}}
    )
    found = tokens.authenticate("s3cret")
    assert found is not None
    assert (found.name, found.role) == ("bot", Role.OPERATOR)
    assert tokens.authenticate("s3cret ") is None
    assert tokens.authenticate("") is None
    assert tokens.named("bot") == found


def test_roles_are_ordered_viewer_operator_admin() -> None:
    assert Role.VIEWER < Role.OPERATOR < Role.ADMIN
    assert [r.label for r in Role] == ["viewer", "operator", "admin"]


def test_tokens_from_the_environment_join_those_of_the_file() -> None:
    env = f'[{{"name": "compose", "role": "admin", "sha256": "{hash_token("t2")}"}}]'
    tokens = parse_tokens({}, env)
    assert len(tokens) == 1
    assert tokens.authenticate("t2") is not None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"name": "bot", "role": "root", "sha256": DIGEST}, "api.tokens[0].role: must be one of"),
        ({"name": "bot", "role": "viewer", "sha256": "abc"}, "api.tokens[0].sha256"),
        ({"name": "bot", "role": "viewer"}, "api.tokens[0].sha256: Field required"),
        ({"name": "bot", "role": "viewer", "sha256": DIGEST, "token": "x"}, "api.tokens[0].token"),
    ],
)
def test_a_bad_token_table_names_the_entry_and_field(table: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_tokens({"api": {"tokens": [table]}})


def test_a_name_used_twice_is_refused() -> None:
    table = {"name": "bot", "role": "viewer", "sha256": DIGEST}
    with pytest.raises(ConfigurationError, match="once"):
        parse_tokens({"api": {"tokens": [table, table]}})
