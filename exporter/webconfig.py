"""TLS and basic auth from an exporter-toolkit web config file (--web.config.file).

The format is the Prometheus exporter-toolkit's, so one file serves every exporter::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      min_version: TLS12            # TLS10 .. TLS13
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
    basic_auth_users:
      alice: $2y$10$...             # bcrypt hash

The file is re-read when it changes (checked at most once a second), so certificates and
users rotate without a restart; a broken new file is logged and the old settings stay.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from aiohttp import web

from .clock import Clock, SystemClock
from .logs import get_logger

log = get_logger(component="web")

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


class WebConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    min_version: str = "TLS12"
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None


@dataclass(frozen=True)
class WebSettings:
    tls: TLSSettings | None = None
    users: dict[str, bytes] = field(default_factory=dict)


def parse_web_config(data: Any, base: Path) -> WebSettings:
    if data is None:
        return WebSettings()
    if not isinstance(data, dict):
        raise WebConfigError("web config: must be a mapping")
    unknown = set(data) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise WebConfigError(f"{sorted(unknown)[0]}: unknown field")
    tls = None
    if data.get("tls_server_config"):
        t = data["tls_server_config"]
        if not isinstance(t, dict):
            raise WebConfigError("tls_server_config: must be a mapping")
        for name in ("cert_file", "key_file"):
            if not t.get(name):
                raise WebConfigError(f"tls_server_config.{name}: required")
        min_version = str(t.get("min_version", "TLS12"))
        if min_version not in TLS_VERSIONS:
            raise WebConfigError(f"tls_server_config.min_version: one of {list(TLS_VERSIONS)}")
        client_auth = str(t.get("client_auth_type", "NoClientCert"))
        if client_auth not in CLIENT_AUTH:
            raise WebConfigError(f"tls_server_config.client_auth_type: one of {list(CLIENT_AUTH)}")
        ca = t.get("client_ca_file")
        if client_auth != "NoClientCert" and client_auth.endswith("VerifyClientCert") and not ca:
            raise WebConfigError("tls_server_config.client_ca_file: required to verify clients")
        tls = TLSSettings(base / t["cert_file"], base / t["key_file"], min_version, client_auth,
                          base / ca if ca else None)
    users: dict[str, bytes] = {}
    raw_users = data.get("basic_auth_users") or {}
    if not isinstance(raw_users, dict):
        raise WebConfigError("basic_auth_users: must be a mapping of user to bcrypt hash")
    for user, hashed in raw_users.items():
        if not isinstance(hashed, str) or not hashed.startswith("$2"):
            raise WebConfigError(f"basic_auth_users.{user}: must be a bcrypt hash")
        users[str(user)] = hashed.encode()
    return WebSettings(tls, users)


def load_settings(path: Path) -> WebSettings:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WebConfigError(f"cannot read web config {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise WebConfigError(f"{path} is not valid YAML") from None
    return parse_web_config(data, path.parent)


class WebSecurity:
    """Holds the web settings, reloads them on change, and enforces them."""

    def __init__(self, path: Path, settings: WebSettings, clock: Clock | None = None) -> None:
        self.path = path
        self.settings = settings
        self._clock = clock or SystemClock()
        self._mtime = self._stat()
        self._checked = self._clock.monotonic()
        self._context: ssl.SSLContext | None = None
        # bcrypt is slow on purpose; remember credentials already verified against a hash.
        self._verified: set[bytes] = set()

    @classmethod
    def load(cls, path: str) -> WebSecurity:
        security = cls(Path(path), load_settings(Path(path)))
        if security.settings.tls:
            security.ssl_context()  # fail at start, not at the first handshake
        return security

    @property
    def tls_enabled(self) -> bool:
        return self.settings.tls is not None

    def _stat(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def ssl_context(self) -> ssl.SSLContext | None:
        tls = self.settings.tls
        if tls is None:
            return None
        if self._context is None:
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            self._apply_tls(self._context, tls)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"tls_server_config: cannot load certificate: {exc}") from None
        return self._context

    @staticmethod
    def _apply_tls(context: ssl.SSLContext, tls: TLSSettings) -> None:
        # Loading into the live context makes new handshakes use the new certificate.
        context.load_cert_chain(tls.cert_file, tls.key_file)
        context.minimum_version = TLS_VERSIONS[tls.min_version]
        context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=tls.client_ca_file)

    def maybe_reload(self) -> None:
        now = self._clock.monotonic()
        if now - self._checked < 1.0:
            return
        self._checked = now
        mtime = self._stat()
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            settings = load_settings(self.path)
            if settings.tls is not None and self._context is not None:
                self._apply_tls(self._context, settings.tls)
        except (WebConfigError, OSError, ssl.SSLError) as exc:
            log.error("web config reload failed; keeping the old settings", error=str(exc))
            return
        self.settings = settings
        self._verified.clear()
        log.info("web config reloaded")

    async def watch(self, every: float = 1.0) -> None:
        """Re-read the file when it changes; before a handshake, not during a request,
        so that the first connection after a rotation already gets the new certificate."""
        while True:
            await asyncio.sleep(every)
            self.maybe_reload()

    def _credentials(self, header: str | None) -> tuple[bytes, bytes, bytes] | None:
        """(hash, password, cache token) for a Basic header naming a known user."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        hashed = self.settings.users.get(user)
        if hashed is None:
            return None
        secret = password.encode()
        return hashed, secret, hashlib.sha256(hashed + b"\0" + secret).digest()

    def authorized(self, header: str | None) -> bool:
        if not self.settings.users:
            return True
        found = self._credentials(header)
        if found is None:
            return False
        hashed, password, token = found
        if any(hmac.compare_digest(token, seen) for seen in self._verified):
            return True
        if bcrypt.checkpw(password, hashed):
            self._verified.add(token)
            return True
        return False

    def _known_verdict(self, header: str | None) -> bool | None:
        """The answer without bcrypt, or None when only bcrypt can tell."""
        if not self.settings.users:
            return True
        found = self._credentials(header)
        if found is None:
            return False
        token = found[2]
        return True if any(hmac.compare_digest(token, s) for s in self._verified) else None

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def require_auth(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            self.maybe_reload()
            header = request.headers.get("Authorization")
            allowed = self._known_verdict(header)
            if allowed is None:
                # bcrypt is slow on purpose: keep it off the event loop, once per password.
                allowed = await asyncio.to_thread(self.authorized, header)
            if not allowed:
                return web.Response(
                    status=401, text="Unauthorized\n",
                    headers={"WWW-Authenticate": 'Basic realm="session-exporter"'},
                )
            return await handler(request)

        return require_auth
