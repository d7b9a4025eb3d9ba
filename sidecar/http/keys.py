"""Typed keys of the aiohttp application's state."""

from __future__ import annotations

from aiohttp import web

from ..service import Sidecar
from .auth import Auth

__all__ = ["AUTH", "SIDECAR"]

SIDECAR = web.AppKey("sidecar", Sidecar)
AUTH = web.AppKey("auth", Auth)
