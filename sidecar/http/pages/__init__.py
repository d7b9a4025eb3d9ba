"""The sidecar's HTML pages: ``GET /`` (status page) and ``GET /jobs/{job}`` (job page).

Server-rendered and readable without JavaScript. ``create_app`` adds :data:`routes`.
"""

from __future__ import annotations

from .routes import routes

__all__ = ["routes"]
