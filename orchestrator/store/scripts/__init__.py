"""The Lua scripts the store runs, one file each, read once per process.

Each script's header says its KEYS and ARGV. Field names of a record are passed in by the
module that owns the record (e.g. `store.bulk` for the bulk hash), never spelled in Lua.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any, cast

import redis
from redis.commands.core import Script


@cache
def source(name: str) -> str:
    """The text of `scripts/NAME.lua`."""
    return files(__name__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


def register(client: redis.Redis, name: str) -> Script:
    """`NAME.lua` as a Script on `client` (EVALSHA, loaded into Redis on first use)."""
    return client.register_script(source(name))


def unbound(name: str) -> Script:
    """`NAME.lua` as a Script bound to no client: every call names one (`client=`), as code
    running on kombu's pooled connections must."""
    return Script(cast(Any, None), source(name).encode())
