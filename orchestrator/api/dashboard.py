"""The dashboard at `/`: server-rendered pages (Jinja2), a little vanilla JS, no CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).parent
router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")
