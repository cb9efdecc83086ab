"""Process entry point shared by the services: settings validated before anything starts."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

from faststream.asgi import AsgiFastStream
from pydantic import ValidationError

from mutualaid.rulebook import RulebookError

from .settings import ServiceSettings


def run(name: str, settings_cls: type[ServiceSettings],
        build_app: Callable[[ServiceSettings], AsgiFastStream]) -> None:
    try:
        settings = settings_cls()
        app = build_app(settings)
    except (ValidationError, ValueError, RulebookError) as exc:
        print(f"{name}: refusing to start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    options = {"host": settings.http_host, "port": settings.http_port, "log_config": None,
               "access_log": "false", "timeout_graceful_shutdown": 15}
    asyncio.run(app.run(logging.getLevelName(settings.log_level), options))  # type: ignore[arg-type]
