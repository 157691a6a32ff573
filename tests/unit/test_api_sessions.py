"""The dashboard's session cookie: the token's name, signed; never the token."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from orchestrator.api.auth import session_token, session_value
from orchestrator.api.context import Context
from orchestrator.core.access import ApiToken, Role, Tokens, hash_token
from orchestrator.core.settings import Settings


class _NoRedisProducer:
    redis: Any = None


def context(tokens: list[ApiToken], secret: str | None = "s" * 32) -> Context:
    settings = Settings(api_session_secret=None if secret is None else SecretStr(secret))
    producer: Any = _NoRedisProducer()  # sessions touch no Redis
    return Context(settings=settings, producer=producer, tokens=Tokens(tokens))


BOT = ApiToken(name="bot", role=Role.OPERATOR, sha256=hash_token("the-token"))


def test_a_session_names_its_token_and_holds_no_secret() -> None:
    ctx = context([BOT])
    value = session_value(ctx, BOT)
    assert "the-token" not in value
    assert hash_token("the-token") not in value
    assert session_token(ctx, value) == BOT


@pytest.mark.parametrize("change", ["tamper", "other-secret", "token-removed", "rotated"])
def test_a_session_that_was_changed_or_outlived_its_token_is_refused(change: str) -> None:
    value = session_value(context([BOT]), BOT)
    if change == "tamper":
        value = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
        ctx = context([BOT])
    elif change == "other-secret":
        ctx = context([BOT], secret="t" * 32)
    elif change == "rotated":
        ctx = context([BOT.model_copy(update={"sha256": hash_token("a-new-token")})])
    else:
        ctx = context([])
    assert session_token(ctx, value) is None


def test_an_unset_session_secret_is_random_per_process() -> None:
    first, second = context([BOT], secret=None), context([BOT], secret=None)
    assert first.session_secret
    assert first.session_secret != second.session_secret
