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
import re
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from aiohttp import web

from .clock import Clock, SystemClock
from .logs import get_logger
from .textfile import MAX_CONFIG_FILE_BYTES, read_text, require_regular
from .yamlfile import FieldError, load_yaml, where_and_why

log = get_logger(component="web")

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# The toolkit's RequestClientCert and RequireAnyClientCert accept a client certificate
# without verifying it; Python's TLS verifies every certificate it asks for, so those two
# are refused with the reason rather than silently made stricter or weaker.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
# Go's names of the TLS 1.2 suites (the only ones Go lets a user choose) -> OpenSSL's.
CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}
TLS_FIELDS = frozenset(
    {
        "cert_file",
        "key_file",
        "min_version",
        "max_version",
        "client_auth_type",
        "client_ca_file",
        "cipher_suites",
        "prefer_server_cipher_suites",
        "client_allowed_sans",
    }
)
# Toolkit fields we cannot honour: refused by name, so nobody believes they are in force.
UNSUPPORTED_TLS_FIELDS = {
    "cert": "inline certificates are not supported; use cert_file",
    "key": "inline keys are not supported; use key_file",
    "curve_preferences": "not supported; OpenSSL's default curves are used",
}
HTTP_FIELDS = frozenset({"http2", "headers"})
# The response headers the exporter-toolkit lets a web config set, lower-cased.
ALLOWED_HEADERS = frozenset(
    {
        "content-security-policy",
        "strict-transport-security",
        "x-content-type-options",
        "x-frame-options",
        "x-xss-protection",
    }
)


class WebConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    min_version: str = "TLS12"
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    max_version: str | None = None
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    # Subject alternative names a client certificate must carry one of (empty: any).
    client_allowed_sans: tuple[str, ...] = ()

    def files(self) -> tuple[Path, ...]:
        """The files whose renewal (same path, new content) must reach new handshakes."""
        ca = (self.client_ca_file,) if self.client_ca_file is not None else ()
        return (self.cert_file, self.key_file, *ca)


@dataclass(frozen=True)
class WebSettings:
    tls: TLSSettings | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def _str_list(value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WebConfigError(f"{path}: must be a list of strings")
    return tuple(value)


def _tls_version(t: dict[str, Any], name: str, default: str | None) -> str | None:
    value = t.get(name, default)
    if value is None:
        return None
    if str(value) not in TLS_VERSIONS:
        raise WebConfigError(f"tls_server_config.{name}: one of {list(TLS_VERSIONS)}")
    return str(value)


def _check_file_names(t: dict[str, Any]) -> None:
    for name in ("cert_file", "key_file"):
        if not t.get(name):
            raise WebConfigError(f"tls_server_config.{name}: required")
    for name in ("cert_file", "key_file", "client_ca_file"):
        if t.get(name) is not None and not isinstance(t[name], str):
            # A number or `true` here crashed the start with a TypeError.
            raise WebConfigError(f"tls_server_config.{name}: must be a file name")


def _tls_versions(t: dict[str, Any]) -> tuple[str, str | None]:
    min_version = _tls_version(t, "min_version", "TLS12")
    assert min_version is not None  # noqa: S101 - narrows the type for mypy
    max_version = _tls_version(t, "max_version", None)
    if max_version is not None and TLS_VERSIONS[max_version] < TLS_VERSIONS[min_version]:
        # Accepted, every handshake failed.
        raise WebConfigError("tls_server_config.max_version: below min_version")
    return min_version, max_version


def _parse_tls(t: Any, base: Path) -> TLSSettings:
    if not isinstance(t, dict):
        raise WebConfigError("tls_server_config: must be a mapping")
    for key in t:
        if key in UNSUPPORTED_TLS_FIELDS:
            raise WebConfigError(f"tls_server_config.{key}: {UNSUPPORTED_TLS_FIELDS[key]}")
        if key not in TLS_FIELDS:
            raise WebConfigError(f"tls_server_config.{key}: unknown field")
    _check_file_names(t)
    min_version, max_version = _tls_versions(t)
    client_auth = str(t.get("client_auth_type", "NoClientCert"))
    if client_auth in UNVERIFIED_CLIENT_AUTH:
        raise WebConfigError(
            f"tls_server_config.client_auth_type: {client_auth} accepts unverified client "
            "certificates, which Python's TLS cannot do; use VerifyClientCertIfGiven or "
            "RequireAndVerifyClientCert with client_ca_file"
        )
    if client_auth not in CLIENT_AUTH:
        raise WebConfigError(f"tls_server_config.client_auth_type: one of {list(CLIENT_AUTH)}")
    ca = t.get("client_ca_file")
    if client_auth != "NoClientCert" and not ca:
        raise WebConfigError("tls_server_config.client_ca_file: required to verify clients")
    suites = _str_list(t.get("cipher_suites"), "tls_server_config.cipher_suites")
    for i, suite in enumerate(suites):
        if suite not in CIPHER_SUITES:
            raise WebConfigError(
                f"tls_server_config.cipher_suites[{i}]: unknown or unsupported suite {suite!r}"
            )
    sans = _str_list(t.get("client_allowed_sans"), "tls_server_config.client_allowed_sans")
    if sans and client_auth == "NoClientCert":
        raise WebConfigError(
            "tls_server_config.client_allowed_sans: needs a client_auth_type "
            "that verifies client certificates"
        )
    prefer = t.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise WebConfigError("tls_server_config.prefer_server_cipher_suites: true or false")
    return TLSSettings(
        base / t["cert_file"],
        base / t["key_file"],
        min_version,
        client_auth,
        base / ca if ca else None,
        max_version,
        suites,
        prefer,
        sans,
    )


def _parse_http(h: Any) -> dict[str, str]:
    if h is None:
        return {}
    if not isinstance(h, dict):
        raise WebConfigError("http_server_config: must be a mapping")
    for key in h:
        if key not in HTTP_FIELDS:
            raise WebConfigError(f"http_server_config.{key}: unknown field")
    # http2 is accepted, as the toolkit's files carry it, and has no effect: we serve
    # HTTP/1.1, which Prometheus speaks. A non-boolean is a typo the toolkit refuses too.
    if not isinstance(h.get("http2", False), bool):
        raise WebConfigError("http_server_config.http2: must be true or false")
    headers = h.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise WebConfigError("http_server_config.headers: must map header names to strings")
    for name, value in headers.items():
        # The exporter-toolkit's set: any other (Content-Length, Content-Encoding,
        # Transfer-Encoding) corrupted every reply, and a line break in a value failed it.
        if name.lower() not in ALLOWED_HEADERS:
            raise WebConfigError(
                f"http_server_config.headers.{name[:60]}: not one of {sorted(ALLOWED_HEADERS)}"
            )
        if not value.isprintable() or not value.isascii():
            raise WebConfigError(
                f"http_server_config.headers.{name}: printable ASCII only, on one line"
            )
    return dict(headers)


def parse_web_config(data: Any, base: Path) -> WebSettings:
    if data is None:
        return WebSettings()
    if not isinstance(data, dict):
        raise WebConfigError("web config: must be a mapping")
    unknown = set(data) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise WebConfigError(f"{sorted(map(str, unknown))[0]}: unknown field")
    tls = _parse_tls(data["tls_server_config"], base) if data.get("tls_server_config") else None
    users: dict[str, bytes] = {}
    raw_users = data.get("basic_auth_users") or {}
    if not isinstance(raw_users, dict):
        raise WebConfigError("basic_auth_users: must be a mapping of user to bcrypt hash")
    for user, hashed in raw_users.items():
        name = str(user)
        # Basic auth splits at the first colon, so such a user could never log in.
        if not name or ":" in name or not name.isprintable():
            shown = name[:60] if name.isprintable() else repr(name[:60])
            raise WebConfigError(
                f"basic_auth_users.{shown}: a user name must be non-empty, printable and "
                "without ':'"
            )
        # The whole shape, not just "$2": a malformed hash passed loading, then made
        # every login of that user an HTTP 500 (bcrypt's "Invalid salt").
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
            raise WebConfigError(f"basic_auth_users.{user}: must be a bcrypt hash")
        users[name] = hashed.encode()
    return WebSettings(tls, users, _parse_http(data.get("http_server_config")))


# Threads checking passwords with bcrypt (it releases the GIL while it hashes), and the
# most checks that may wait for them; a request beyond is answered 429 at once. A
# verified password is remembered, so Prometheus itself waits for no check after its
# first scrape.
CHECK_THREADS = 2
MAX_PENDING_CHECKS = 16
_BCRYPT_HASH = re.compile(r"\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}")


def load_settings(path: Path) -> WebSettings:
    try:
        data = load_yaml(read_text(path, MAX_CONFIG_FILE_BYTES))
    except OSError as exc:
        raise WebConfigError(f"cannot read web config {path}: {exc.strerror}") from None
    except FieldError as exc:
        raise WebConfigError(f"{exc}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path} is not valid YAML{where_and_why(exc)}") from None
    except (ValueError, RecursionError):
        # ValueError: not UTF-8 (uncaught, it stopped the file's watcher for good).
        raise WebConfigError(f"{path} is not valid YAML in UTF-8") from None
    return parse_web_config(data, path.parent)


@dataclass(frozen=True)
class _Credentials:
    hashed: bytes  # the user's bcrypt hash, or another user's for an unknown name
    password: bytes
    token: bytes  # remembers a verified password without keeping it
    known: bool  # whether the user name is configured


class WebSecurity:
    """Holds the web settings, reloads them on change, and enforces them."""

    def __init__(self, path: Path, settings: WebSettings, clock: Clock | None = None) -> None:
        self.path = path
        self.settings = settings
        self._clock = clock or SystemClock()
        self._mtime = self._stat()
        self._tls_mtimes = self._tls_stat(settings)
        self._checked = self._clock.monotonic()
        self._context: ssl.SSLContext | None = None
        # bcrypt is slow on purpose; remember credentials already verified against a hash.
        self._verified: set[bytes] = set()
        # bcrypt checks run on threads of their own, at most MAX_PENDING_CHECKS waiting:
        # in the default pool, 200 clients sending wrong passwords queued ahead of the
        # parsing of replies and the renders, and accounts timed out (probe 6).
        self._checks = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="bcrypt")
        self._pending_checks = 0

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
        return _mtime(self.path)

    @staticmethod
    def _tls_stat(settings: WebSettings) -> tuple[float, ...]:
        return tuple(_mtime(f) for f in settings.tls.files()) if settings.tls else ()

    def ssl_context(self) -> ssl.SSLContext | None:
        tls = self.settings.tls
        if tls is None:
            return None
        fresh = self._context is None
        if self._context is None:
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            # A context made just now serves nothing yet: no need to try on a scratch one.
            (self._fill_tls if fresh else self._apply_tls)(self._context, tls)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"tls_server_config: cannot load certificate: {exc}") from None
        return self._context

    @classmethod
    def _apply_tls(cls, context: ssl.SSLContext, tls: TLSSettings) -> None:
        """`tls` into `context`, all or nothing: tried on a new context first, since a step
        that fails leaves the ones before it applied (a reload refused for a missing CA
        file had already turned client certificate checks off)."""
        cls._fill_tls(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), tls)
        cls._fill_tls(context, tls)

    @staticmethod
    def _fill_tls(context: ssl.SSLContext, tls: TLSSettings) -> None:
        for path in (tls.cert_file, tls.key_file, tls.client_ca_file):
            if path is not None:
                require_regular(path)
        # Loading into the live context makes new handshakes use the new certificate.
        context.load_cert_chain(tls.cert_file, tls.key_file)
        context.minimum_version = TLS_VERSIONS[tls.min_version]
        context.maximum_version = (
            TLS_VERSIONS[tls.max_version] if tls.max_version else ssl.TLSVersion.MAXIMUM_SUPPORTED
        )
        if tls.cipher_suites:
            context.set_ciphers(":".join(CIPHER_SUITES[s] for s in tls.cipher_suites))
        if tls.prefer_server_cipher_suites:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        else:
            context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=tls.client_ca_file)

    def client_allowed(self, peercert: Any) -> bool:
        """With `client_allowed_sans`, a verified client certificate must carry one of
        them (DNS, IP, e-mail or URI SAN), as the exporter-toolkit checks."""
        tls = self.settings.tls
        if tls is None or not tls.client_allowed_sans:
            return True
        if not peercert:
            return False
        sans = {value for _, value in peercert.get("subjectAltName", ())}
        return any(san in sans for san in tls.client_allowed_sans)

    def maybe_reload(self) -> None:
        now = self._clock.monotonic()
        if now - self._checked < 1.0:
            return
        self._checked = now
        mtime, tls_mtimes = self._stat(), self._tls_stat(self.settings)
        if mtime == self._mtime and tls_mtimes == self._tls_mtimes:
            return
        # Certificates renewed in place (cert-manager, certbot) count as a change too.
        self._mtime, self._tls_mtimes = mtime, tls_mtimes
        try:
            settings = load_settings(self.path)
            if settings.tls is not None and self._context is not None:
                self._apply_tls(self._context, settings.tls)
        except (WebConfigError, OSError, ssl.SSLError) as exc:
            log.error("web config reload failed; keeping the old settings", error=str(exc))
            return
        except Exception as exc:
            # A reload must never stop the watcher. Only the type: a message may quote
            # the file, and it can hold hashes.
            log.error(
                "web config reload failed; keeping the old settings",
                error=f"unexpected {type(exc).__name__}",
            )
            return
        self.settings = settings
        self._tls_mtimes = self._tls_stat(settings)
        self._verified.clear()
        log.info("web config reloaded")

    async def watch(self, every: float = 1.0) -> None:
        """Re-read the file when it changes; before a handshake, not during a request,
        so that the first connection after a rotation already gets the new certificate."""
        while True:
            await asyncio.sleep(every)
            self.maybe_reload()

    def _credentials(self, users: dict[str, bytes], header: str | None) -> _Credentials | None:
        """What a Basic header offers, checked against its user's hash in `users` (not
        empty); an unknown user's against a configured user's hash, so that bcrypt runs
        either way and the time of the answer does not tell which user names exist (as
        the exporter-toolkit does)."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        hashed = users.get(user)
        known = hashed is not None
        if hashed is None:
            hashed = next(iter(users.values()))
        secret = password.encode()
        token = hashlib.sha256(hashed + b"\0" + secret).digest()
        return _Credentials(hashed, secret, token, known)

    def authorized(self, header: str | None) -> bool:
        # Read once: this runs in a thread, and a reload may replace the settings
        # between two reads (with no users, `next` above raised StopIteration).
        users = self.settings.users
        if not users:
            return True
        found = self._credentials(users, header)
        if found is None:
            return False
        if found.known and any(hmac.compare_digest(found.token, s) for s in self._verified):
            return True
        try:
            matched = bcrypt.checkpw(found.password, found.hashed)
        except ValueError:  # a password over bcrypt's 72 bytes: a client's, so a 401
            return False
        if matched and found.known:
            self._verified.add(found.token)
            return True
        return False

    def _known_verdict(self, header: str | None) -> bool | None:
        """The answer without bcrypt, or None when only bcrypt can tell."""
        users = self.settings.users
        if not users:
            return True
        found = self._credentials(users, header)
        if found is None:
            return False
        if found.known and any(hmac.compare_digest(found.token, s) for s in self._verified):
            return True
        return None

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def require_auth(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            self.maybe_reload()
            if not self.client_allowed(_peercert(request)):
                return web.Response(status=403, text="Client certificate not allowed\n")
            header = request.headers.get("Authorization")
            allowed = self._known_verdict(header)
            if allowed is None:
                if self._pending_checks >= MAX_PENDING_CHECKS:
                    return web.Response(
                        status=429,
                        text="Too many password checks at once\n",
                        headers={"Retry-After": "1"},
                    )
                # bcrypt is slow on purpose: keep it off the event loop, once per password.
                self._pending_checks += 1
                try:
                    loop = asyncio.get_running_loop()
                    allowed = await loop.run_in_executor(self._checks, self.authorized, header)
                finally:
                    self._pending_checks -= 1
            if not allowed:
                return web.Response(
                    status=401,
                    text="Unauthorized\n",
                    headers={"WWW-Authenticate": 'Basic realm="session-exporter"'},
                )
            response = await handler(request)
            if not response.prepared:
                response.headers.update(self.settings.headers)
            return response

        return require_auth


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return 0.0


def _peercert(request: web.Request) -> Any:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object.getpeercert() if ssl_object is not None else None
