from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from exporter.connections import TLS_HANDSHAKE_SECONDS, CappedTCPSite, ConnectionCap
from exporter.simulators.clock import FakeClock
from exporter.webconfig import WebConfigError, WebSecurity, WebSettings, load_settings

from .support import make_cert, openssl, require_tool

ROOT = Path(__file__).resolve().parent.parent


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def serve_secured(
    security: WebSecurity,
    cap: ConnectionCap | None = None,
    handshake_seconds: float = TLS_HANDSHAKE_SECONDS,
) -> tuple[web.AppRunner, str]:
    """A hello app behind `security` (TLS and auth) on 127.0.0.1, on the daemon's own
    kind of site; clean up the runner."""
    cap = cap or ConnectionCap(64)
    app = web.Application(middlewares=[cap.middleware(), security.middleware()])
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = CappedTCPSite(
        runner,
        "127.0.0.1",
        0,
        cap,
        ssl_context=security.ssl_context(),
        handshake_seconds=handshake_seconds,
    )
    await site.start()
    return runner, f"https://127.0.0.1:{runner.addresses[0][1]}/"


def write_config(path: Path, cert: Path, key: Path, password: str) -> None:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    path.write_text(
        "tls_server_config:\n"
        f"  cert_file: {cert.name}\n  key_file: {key.name}\n  min_version: TLS12\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )


async def test_tls_and_basic_auth_and_certificate_rotation(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "first")
    config = tmp_path / "web.yml"
    write_config(config, cert, key, "right-password")
    clock = FakeClock()
    security = WebSecurity(config, load_settings(config), clock)
    runner, url = await serve_secured(security)
    try:
        trust_first = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http:
            async with http.get(url, ssl=trust_first) as r:
                assert r.status == 401
                assert "Basic" in r.headers["WWW-Authenticate"]
            wrong = basic("prometheus", "wrong")
            async with http.get(url, ssl=trust_first, headers=wrong) as r:
                assert r.status == 401
            right = basic("prometheus", "right-password")
            async with http.get(url, ssl=trust_first, headers=right) as r:
                assert r.status == 200 and await r.text() == "hello"

            # Rotate: a new certificate and password, picked up without a restart.
            cert2, key2 = make_cert(tmp_path, "second")
            write_config(config, cert2, key2, "new-password")
            os.utime(config, (1, 2))  # make sure the mtime changes
            clock.advance(2)
            security.maybe_reload()  # what the watcher task does every second
            trust_second = ssl.create_default_context(cafile=str(cert2))
            async with aiohttp.ClientSession() as fresh:  # a new TLS handshake
                auth2 = basic("prometheus", "new-password")
                async with fresh.get(url, ssl=trust_second, headers=auth2) as r:
                    assert r.status == 200
                async with fresh.get(url, ssl=trust_second, headers=right) as r:
                    assert r.status == 401  # the old password is gone
            async with aiohttp.ClientSession() as again:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    async with again.get(url, ssl=trust_first, headers=auth2):
                        pass  # the old certificate is no longer served
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tls_server_config:\n  key_file: k\n", "cert_file: required"),
        ("basic_auth_users:\n  bob: plaintext\n", "bcrypt"),
        ("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: SSL3\n", "min_version"),
        ("colour: red\n", "unknown field"),
        # These crashed the start with a TypeError (and a reload with a 500).
        ("tls_server_config:\n  cert_file: 123\n  key_file: k\n", "cert_file: must be a file"),
        ("1: a\nb: c\n", "unknown field"),
        # Accepted, then every handshake failed.
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n"
            "  min_version: TLS13\n  max_version: TLS12\n",
            "max_version: below min_version",
        ),
        # Accepted, then every reply was corrupt or failed.
        ("http_server_config:\n  headers:\n    Content-Length: '1'\n", "not one of"),
        ('http_server_config:\n  headers:\n    X-Frame-Options: "deny\\r\\nX: y"\n', "one line"),
        ("http_server_config:\n  http2: sometimes\n", "http2: must be true or false"),
        # Passed loading, then every login of bob was an HTTP 500 ("Invalid salt").
        ("basic_auth_users:\n  bob: $2b$10$not-a-real-hash\n", "bcrypt"),
        ("basic_auth_users:\n  bob: caf\xe9\n", "UTF-8"),  # written as Latin-1 below
        # Probe 11: accepted, and no login could ever reach them (Basic auth splits at
        # the first colon).
        (
            "basic_auth_users:\n  'a:b': $2b$12$" + "a" * 53 + "\n",
            r"^basic_auth_users\.a:b: a user name must be non-empty, printable and without ':'$",
        ),
        ("basic_auth_users:\n  '': $2b$12$" + "a" * 53 + "\n", "non-empty"),
        # A second bob replaced the first without a word.
        (
            "basic_auth_users:\n  bob: a\n  bob: b\n",
            r"^basic_auth_users\.bob: given twice \(again at line 3\)$",
        ),
    ],
)
def test_bad_web_config(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(WebConfigError, match=message):
        load_settings(path)


@pytest.mark.parametrize("value", ["true", "false"])
def test_http2_is_accepted_as_the_toolkit_writes_it(tmp_path: Path, value: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"http_server_config:\n  http2: {value}\n")
    assert load_settings(path).headers == {}


def test_a_password_too_long_for_bcrypt_is_refused_not_a_server_error(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"short", bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"basic_auth_users:\n  bob: {hashed}\n")
    security = WebSecurity(path, load_settings(path), FakeClock())
    assert security.authorized("Basic " + base64.b64encode(b"bob:short").decode())
    assert not security.authorized("Basic " + base64.b64encode(b"bob:" + b"x" * 100).decode())


def test_an_unknown_user_costs_a_bcrypt_check_and_is_never_let_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Answered at once, a wrong user name was told apart from a wrong password by time.
    path = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4))
    path.write_text(f"basic_auth_users:\n  bob: {hashed.decode()}\n")
    security = WebSecurity(path, load_settings(path), FakeClock())
    checked: list[bytes] = []
    checkpw = bcrypt.checkpw

    def spy(password: bytes, against: bytes) -> bool:
        checked.append(against)
        return bool(checkpw(password, against))

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    header = basic("mallory", "pw")["Authorization"]  # bob's password, under a name nobody has
    assert security._known_verdict(header) is None  # so it goes to bcrypt, off the loop
    assert not security.authorized(header)
    assert not security.authorized(header)  # and is not remembered as verified
    assert checked == [hashed, hashed]
    assert security.authorized(basic("bob", "pw")["Authorization"])


def test_a_reload_to_no_users_mid_check_is_no_server_error(tmp_path: Path) -> None:
    # `authorized` runs in a thread while a reload may replace the settings: read twice,
    # users there at the first read and gone at the second raised StopIteration (a 500).
    path = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4))
    path.write_text(f"basic_auth_users:\n  bob: {hashed.decode()}\n")
    security = WebSecurity(path, load_settings(path), FakeClock())
    with_bob, without = security.settings, WebSettings()

    class Swapped:
        """The settings as a reload leaves them: bob at the first read only."""

        reads = 0

        @property
        def users(self) -> dict[str, bytes]:
            Swapped.reads += 1
            return with_bob.users if Swapped.reads == 1 else without.users

    security.settings = Swapped()  # type: ignore[assignment]
    assert not security.authorized(basic("mallory", "pw")["Authorization"])


def test_promtool_and_we_accept_the_example_web_config(tmp_path: Path) -> None:
    require_tool("promtool")
    example = tmp_path / "web-config.yml"
    shutil.copy(ROOT / "examples" / "web-config.yml", example)
    (tmp_path / "tls").mkdir()
    make_cert(tmp_path / "tls", "server")
    result = subprocess.run(
        ["promtool", "check", "web-config", str(example)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    security = WebSecurity.load(str(example))
    assert security.tls_enabled
    assert security.authorized("Basic " + base64.b64encode(b"prometheus:change-me").decode())
    assert not security.authorized("Basic " + base64.b64encode(b"prometheus:nope").decode())


async def test_client_certificates_are_required_and_verified(tmp_path: Path) -> None:
    server_cert, server_key = make_cert(tmp_path, "server")
    ca_cert, ca_key = make_cert(tmp_path, "client-ca")
    # A client certificate signed by the CA, and one that is self-signed.
    openssl(
        [
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=scraper",
            "-keyout",
            str(tmp_path / "client.key"),
            "-out",
            str(tmp_path / "client.csr"),
        ]
    )
    openssl(
        [
            "x509",
            "-req",
            "-in",
            str(tmp_path / "client.csr"),
            "-days",
            "1",
            "-CA",
            str(ca_cert),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-out",
            str(tmp_path / "client.crt"),
        ]
    )
    rogue_cert, rogue_key = make_cert(tmp_path, "rogue")
    config = tmp_path / "web.yml"
    config.write_text(
        "tls_server_config:\n"
        f"  cert_file: {server_cert.name}\n  key_file: {server_key.name}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {ca_cert.name}\n"
    )
    security = WebSecurity.load(str(config))
    runner, url = await serve_secured(security)

    def client_context(cert: Path | None, key: Path | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(server_cert))
        if cert is not None and key is not None:
            context.load_cert_chain(cert, key)
        return context

    try:
        async with aiohttp.ClientSession() as http:
            good = client_context(tmp_path / "client.crt", tmp_path / "client.key")
            async with http.get(url, ssl=good) as r:
                assert r.status == 200
        for cert, key in ((None, None), (rogue_cert, rogue_key)):
            async with aiohttp.ClientSession() as http:
                with pytest.raises(aiohttp.ClientError):
                    async with http.get(url, ssl=client_context(cert, key)) as r:
                        await r.read()
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("tls_lines", "message"),
    [
        # Toolkit fields we cannot honour are refused by name, never silently ignored.
        ("  curve_preferences: [CurveP256]\n", "curve_preferences: not supported"),
        ("  colour: red\n", "tls_server_config.colour: unknown field"),
        ("  cipher_suites: [TLS_FAKE]\n", r"cipher_suites\[0\]"),
        (
            "  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt\n",
            "unverified client certificates",
        ),
        ("  client_auth_type: RequestClientCert\n", "unverified client certificates"),
        ("  client_allowed_sans: [scraper]\n", "needs a client_auth_type"),
        ("  max_version: TLS14\n", "max_version"),
    ],
)
def test_tls_fields_are_honoured_or_refused(tmp_path: Path, tls_lines: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text("tls_server_config:\n  cert_file: c\n  key_file: k\n" + tls_lines)
    with pytest.raises(WebConfigError, match=message):
        load_settings(path)


def test_a_refused_tls_reload_changes_nothing_in_force(tmp_path: Path) -> None:
    # Applied step by step, a reload refused for a missing CA file had already turned
    # client certificate checks off, while the log said the old settings were kept.
    cert, key = make_cert(tmp_path, "server")
    ca, _ = make_cert(tmp_path, "client-ca")
    path = tmp_path / "web.yml"
    head = f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n"
    path.write_text(
        head + f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca.name}\n"
    )
    clock = FakeClock()
    security = WebSecurity(path, load_settings(path), clock)
    context = security.ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    path.write_text(
        head + "  client_auth_type: NoClientCert\n  min_version: TLS13\n"
        "  client_ca_file: missing.crt\n"
    )
    os.utime(path, (1, 2))
    clock.advance(2)
    security.maybe_reload()
    assert security.settings.tls is not None
    assert security.settings.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_reload_that_fails_unexpectedly_keeps_the_settings_and_the_watcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Uncaught, it was a 500 for the request that triggered it, or the end of the watcher.
    from exporter import webconfig

    path = tmp_path / "web.yml"
    path.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    clock = FakeClock()
    security = WebSecurity(path, load_settings(path), clock)
    before = security.settings

    def broken(path: Path) -> WebSettings:
        raise TypeError("unsupported operand")

    monkeypatch.setattr(webconfig, "load_settings", broken)
    os.utime(path, (1, 2))
    clock.advance(2)
    security.maybe_reload()
    assert security.settings is before


def test_cipher_suites_and_versions_reach_the_tls_context(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "server")
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n"
        "  max_version: TLS12\n"
        "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    )
    security = WebSecurity.load(str(path))
    context = security.ssl_context()
    assert context is not None
    assert context.maximum_version == ssl.TLSVersion.TLSv1_2
    names = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names == {"ECDHE-RSA-AES256-GCM-SHA384"}
    assert security.settings.headers == {"X-Frame-Options": "deny"}


async def test_renewed_certificate_files_at_the_same_path_are_served(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "server")
    config = tmp_path / "web.yml"
    config.write_text(f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n")
    clock = FakeClock()
    security = WebSecurity(config, load_settings(config), clock)
    runner, url = await serve_secured(security)
    try:
        old = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http, http.get(url, ssl=old) as r:
            assert r.status == 200
        saved_old = cert.read_bytes()
        # certbot and cert-manager rewrite the files in place; the web config is untouched.
        renewed_dir = tmp_path / "renewed"
        renewed_dir.mkdir()
        new_cert, new_key = make_cert(renewed_dir, "server")
        shutil.copy(new_cert, cert)
        shutil.copy(new_key, key)
        os.utime(cert, (10, 10))
        clock.advance(2)
        security.maybe_reload()
        trust_new = ssl.create_default_context(cafile=str(new_cert))
        async with aiohttp.ClientSession() as http, http.get(url, ssl=trust_new) as r:
            assert r.status == 200
        assert cert.read_bytes() != saved_old
    finally:
        await runner.cleanup()


async def test_client_allowed_sans_refuse_other_verified_clients(tmp_path: Path) -> None:
    server_cert, server_key = make_cert(tmp_path, "server")
    ca_cert, ca_key = make_cert(tmp_path, "client-ca")
    ext = tmp_path / "san.ext"
    for name in ("scraper", "intruder"):
        ext.write_text(f"subjectAltName=DNS:{name}.example\n")
        openssl(
            [
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                f"/CN={name}",
                "-keyout",
                str(tmp_path / f"{name}.key"),
                "-out",
                str(tmp_path / f"{name}.csr"),
            ]
        )
        openssl(
            [
                "x509",
                "-req",
                "-in",
                str(tmp_path / f"{name}.csr"),
                "-days",
                "1",
                "-CA",
                str(ca_cert),
                "-CAkey",
                str(ca_key),
                "-CAcreateserial",
                "-extfile",
                str(ext),
                "-out",
                str(tmp_path / f"{name}.crt"),
            ]
        )
    config = tmp_path / "web.yml"
    config.write_text(
        "tls_server_config:\n"
        f"  cert_file: {server_cert.name}\n  key_file: {server_key.name}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {ca_cert.name}\n"
        "  client_allowed_sans: [scraper.example]\n"
    )
    security = WebSecurity.load(str(config))
    runner, url = await serve_secured(security)
    try:
        statuses = {}
        for name in ("scraper", "intruder"):
            context = ssl.create_default_context(cafile=str(server_cert))
            context.load_cert_chain(tmp_path / f"{name}.crt", tmp_path / f"{name}.key")
            async with aiohttp.ClientSession() as http, http.get(url, ssl=context) as r:
                statuses[name] = r.status
        assert statuses == {"scraper": 200, "intruder": 403}
    finally:
        await runner.cleanup()


def test_a_web_config_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    # A FIFO blocked the read (the watcher's thread for good); /dev/zero never ends.
    fifo = tmp_path / "web.yml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(WebConfigError, match="not a regular file"):
            load_settings(path)


def test_a_certificate_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    # `ssl` reading a FIFO waits for a writer: the start, or the reload, hung.
    _cert, key = make_cert(tmp_path, "server")
    os.mkfifo(tmp_path / "fifo.crt")
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: fifo.crt\n  key_file: {key.name}\n")
    security = WebSecurity(path, load_settings(path), FakeClock())
    with pytest.raises(WebConfigError, match="not a regular file"):
        security.ssl_context()


def tls_only(tmp_path: Path) -> tuple[WebSecurity, Path]:
    """TLS with a new certificate, no auth: (the security, the certificate)."""
    cert, key = make_cert(tmp_path, "server")
    config = tmp_path / "web.yml"
    config.write_text(f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n")
    return WebSecurity(config, load_settings(config), FakeClock()), cert


async def test_a_tls_connection_that_never_says_hello_is_closed(tmp_path: Path) -> None:
    # Counted by the connection cap only once its handshake is done, such a connection
    # is bounded by the handshake deadline instead (asyncio's default held it 60 s).
    security, _cert = tls_only(tmp_path)
    runner, _url = await serve_secured(security, handshake_seconds=0.2)
    try:
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # A bound on failure only: the server closes at 0.2 s, or the read fails after 10.
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""
        writer.close()
    finally:
        await runner.cleanup()
    assert TLS_HANDSHAKE_SECONDS <= 10


async def test_the_connection_cap_holds_under_tls(tmp_path: Path) -> None:
    # Closed gracefully, a TLS connection waits up to 30 s for the client's goodbye and
    # keeps its socket: clients that never answer held 100 connections at a cap of 8.
    security, cert = tls_only(tmp_path)
    cap = ConnectionCap(4)
    runner, _url = await serve_secured(security, cap)
    trust = ssl.create_default_context(cafile=str(cert))
    trust.check_hostname = False
    clients: list[ssl.SSLSocket] = []

    def client(port: int) -> ssl.SSLSocket:
        """One request, then the socket held and never read again: asyncio's own client
        would answer the server's goodbye by itself."""
        tls = trust.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 200")
        return tls

    try:
        port = runner.addresses[0][1]
        clients.extend([await asyncio.to_thread(client, port) for _ in range(12)])
        server = runner.server
        assert server is not None
        assert len(server.connections) <= 4
        assert cap.closed_for_room == 8
    finally:
        for tls in clients:
            tls.close()
        await runner.cleanup()


async def test_password_checks_have_threads_of_their_own_and_a_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by a probe: 200 clients sending wrong passwords queued their bcrypt checks in
    # the default thread pool, ahead of the parsing of vendor replies, and accounts went
    # down with cycle timeouts. Checks now run on threads of their own, a bounded few
    # waiting; a request beyond is answered 429 at once.
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from typing import Any

    from aiohttp.test_utils import TestServer

    from exporter.webconfig import MAX_PENDING_CHECKS

    path = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"basic_auth_users:\n  bob: {hashed}\n")
    security = WebSecurity(path, load_settings(path), FakeClock())
    release = threading.Event()
    threads: set[str] = set()

    def slow_check(header: str | None) -> bool:
        threads.add(threading.current_thread().name)
        release.wait(10)
        return False

    monkeypatch.setattr(security, "authorized", slow_check)
    all_waiting = asyncio.Event()
    pool = security._checks

    class Counted(ThreadPoolExecutor):
        """The checks' pool, saying when every request waits for a check."""

        submitted = 0

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            Counted.submitted += 1
            if Counted.submitted == MAX_PENDING_CHECKS:
                all_waiting.set()  # run_in_executor submits from the loop's thread
            return pool.submit(fn, *args, **kwargs)

    monkeypatch.setattr(security, "_checks", Counted(1))
    app = web.Application(middlewares=[security.middleware()])
    app.router.add_get("/", hello)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:

            async def get(password: str) -> int:
                async with session.get(server.make_url("/"), headers=basic("bob", password)) as r:
                    return r.status

            waiting = [asyncio.create_task(get(f"wrong-{i}")) for i in range(MAX_PENDING_CHECKS)]
            await asyncio.wait_for(all_waiting.wait(), 10)
            assert security._pending_checks == MAX_PENDING_CHECKS
            assert await get("one-more") == 429
            release.set()
            assert await asyncio.gather(*waiting) == [401] * MAX_PENDING_CHECKS
    finally:
        release.set()
        await server.close()
    assert threads and all(name.startswith("bcrypt") for name in threads)
