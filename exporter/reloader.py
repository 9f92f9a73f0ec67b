"""Config reloads (SIGHUP, POST /-/reload): one at a time, in the order asked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from .config import Config, ConfigError
from .logs import get_logger

log = get_logger(component="main")


class Reloadable(Protocol):
    def apply_config(self, config: Config) -> None: ...

    def config_rejected(self, reason: str) -> None: ...


class ConfigReloader:
    """Reads the config file off the loop and applies it, or refuses it keeping the old.

    Reloads run one at a time: two at once read the file in one order and could finish
    in the other, so that the config read first, applied last, stayed in force (found
    by a probe: an account removed by the second reload came back with the first)."""

    def __init__(self, load: Callable[[], Config], target: Reloadable) -> None:
        self._load = load
        self._target = target
        self._lock = asyncio.Lock()

    async def reload(self) -> str | None:
        """None once applied, else why the new config was refused."""
        async with self._lock:
            return await self._reload()

    async def _reload(self) -> str | None:
        try:
            # File reads (the config and any *_file secret) stay off the event loop.
            new = await asyncio.to_thread(self._load)
        except ConfigError as exc:
            self._target.config_rejected(str(exc))
            log.error("config reload failed; keeping the old config", error=str(exc))
            return str(exc)
        except Exception as exc:  # a config we failed to refuse properly: still refused
            # The type only: an exception's text may quote the file, credentials too.
            self._target.config_rejected(f"unexpected {type(exc).__name__} (see the log)")
            log.error(
                "config reload failed; keeping the old config",
                error=type(exc).__name__,
                hint="a bug in session-exporter: please "
                "report it with the config field that caused it (not its value)",
            )
            return f"unexpected {type(exc).__name__}"
        self._target.apply_config(new)
        log.info("config reloaded", accounts=len(new.accounts))
        return None
