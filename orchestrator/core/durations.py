"""Durations as people write them in files and flags: `90`, `90s`, `30m`, `2h`, `1d`."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(text: str) -> float:
    """`90`, `90s`, `30m`, `2h`, `1d` as seconds; ValueError naming the rule otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError("must be a number with an optional unit s, m, h or d (e.g. 30m)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]
