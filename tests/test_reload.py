"""Reload through SIGHUP and POST /-/reload on the real process."""

from __future__ import annotations

import signal
import subprocess
import urllib.request
from pathlib import Path

from .support import get, start_exporter, value, wait_for


def account(name: str) -> str:
    # An account aimed at a closed loopback port: it fails fast, and its series show up.
    return (
        f"  - name: {name}\n    partner_id: 1\n    api_key: key-{name}\n"
        f"    base_url: http://127.0.0.1:9\n"
    )


def post(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_sighup_and_post_reload(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("global:\n  interval: 1h\nglance:\n" + account("alpha"))
    with start_exporter("--config.file", str(config)) as exporter:
        check_reloads(exporter.proc, exporter.url, config)
        assert "key-" not in exporter.log()


def check_reloads(proc: subprocess.Popen[str], url: str, config: Path) -> None:
    def up(name: str) -> float | None:
        return value(get(url + "/metrics")[1], "session_exporter_up", vendor="glance", account=name)

    try:
        assert wait_for(lambda: get(url + "/-/ready")[0] == 200, 20)
        assert up("alpha") == 0.0

        config.write_text("global:\n  interval: 1h\nglance:\n" + account("beta"))
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: up("beta") == 0.0 and up("alpha") is None, 10)

        config.write_text("glance:\n  - name: gamma\n")  # partner_id missing
        status, text = post(url + "/-/reload")
        assert status == 500
        assert "glance[0].partner_id: required" in text
        metrics = get(url + "/metrics")[1]
        assert value(metrics, "session_exporter_config_last_reload_successful") == 0.0
        assert up("beta") == 0.0  # the old config stays in force
        assert "key-beta" not in metrics.decode() and "key-beta" not in text
        # The status page says why, where an operator looks first (it said "see the log").
        page = get(url + "/")[1].decode()
        assert "The last config reload failed: glance[0].partner_id: required." in page

        # Found by a probe: an empty file, or one read while written, reloaded into no
        # account at all with 200, and every series went.
        for cut_short in ("", "# nothing yet\n", "global:\n  interval: 1h\nglance:\n"):
            config.write_text(cut_short)
            status, text = post(url + "/-/reload")
            assert status == 500, cut_short
            assert "no account" in text
            assert up("beta") == 0.0

        config.write_text("global:\n  interval: 1h\nglance:\n" + account("gamma"))
        assert post(url + "/-/reload")[0] == 200
        metrics = get(url + "/metrics")[1]
        assert value(metrics, "session_exporter_config_last_reload_successful") == 1.0
        assert "reload failed" not in get(url + "/")[1].decode()
        assert wait_for(lambda: up("gamma") == 0.0, 10)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
