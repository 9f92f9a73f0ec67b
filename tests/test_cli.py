"""The real command, as users run it: config checking, the demo, signals."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from .support import ROOT, demo, get, require_tool, run_cli, samples, wait_for


def test_config_check_names_the_field_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("glance:\n  - name: acme\n    api_key: k\n")
    result = run_cli("--config.file", str(path), "--config.check")
    assert result.returncode == 2
    assert "glance[0].partner_id: required" in result.stderr
    assert "Traceback" not in result.stderr


def test_example_config_is_valid(tmp_path: Path) -> None:
    secrets = {name: tmp_path / name for name in ("sv_secret", "rescue_code")}
    for path in secrets.values():
        path.write_text("not-a-real-secret\n")
    text = (ROOT / "config.example.yaml").read_text()
    text = text.replace("/run/secrets/securevideo_secret", str(secrets["sv_secret"]))
    text = text.replace("/run/secrets/rescue_auth_code", str(secrets["rescue_code"]))
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = run_cli(
        "--config.file",
        str(path),
        "--config.check",
        env={"GLANCE_API_KEY": "k", "SV_API_KEY": "k", "RESCUE_PASSWORD": "p"},
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


@pytest.mark.parametrize(
    "flags",
    [
        ("--web.listen-address", "nonsense"),
        ("--web.telemetry-path", "metrics"),
        ("--web.telemetry-path", "/-/ready"),
        ("--shard", "3/3"),
        ("--web.max-connections", "0"),
    ],
)
def test_bad_flags_are_clean_errors(flags: tuple[str, str]) -> None:
    result = run_cli("--demo", *flags)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_a_config_file_that_never_ends_is_a_clean_error() -> None:
    # /dev/zero was read whole: a MemoryError traceback and exit status 1.
    result = run_cli("--config.file", "/dev/zero", "--config.check")
    assert result.returncode == 2
    assert "not a regular file" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_demo_serves_every_vendor_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with demo() as (proc, url):
        assert wait_for(lambda: get(url + "/-/ready")[0] == 200, 30), proc.stderr
        metrics = get(url + "/metrics")[1]
        names = {name for name, _ in samples(metrics)}
        for expected in (
            "glance_sessions_current",
            "securevideo_sessions_month",
            "rescue_sessions",
            "session_exporter_build_info",
        ):
            assert expected in names
        for key, v in samples(metrics).items():
            if key[0] == "session_exporter_up":
                assert v == 1.0, key

        require_tool("promtool")
        path = tmp_path / "metrics.txt"
        path.write_bytes(metrics)
        with path.open("rb") as stdin:
            lint = subprocess.run(
                ["promtool", "check", "metrics"], stdin=stdin, capture_output=True, text=True
            )
        assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), (
            lint.stdout + lint.stderr
        )

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 5


CONTRACT = (
    "glance_sessions_current",
    "glance_session_guests_current",
    "glance_waiting_session_oldest_start_timestamp_seconds",
    "glance_sessions_today",
    "glance_session_average_duration_seconds",
    "glance_sessions_completed_total",
    "glance_session_duration_seconds_count",
    "glance_user_sessions_current",
    "securevideo_sessions_total",
    "securevideo_session_duration_seconds_count",
    "securevideo_session_wait_seconds_count",
    "securevideo_sessions_month",
    "securevideo_sessions_in_progress",
    "rescue_sessions",
    "rescue_session_status_oldest_change_timestamp_seconds",
    "rescue_session_wait_seconds_count",
    "session_exporter_up",
    "session_exporter_last_success_timestamp_seconds",
    "session_exporter_collect_duration_seconds",
    "session_exporter_upstream_requests_total",
    "session_exporter_build_info",
    "session_exporter_config_last_reload_successful",
    "session_exporter_config_last_reload_success_timestamp_seconds",
)


@pytest.mark.slow
def test_demo_shows_every_contract_metric_non_zero_within_a_minute() -> None:
    missing: set[str] = set(CONTRACT)
    with demo() as (_proc, url):

        def all_non_zero() -> bool:
            for (name, _), v in samples(get(url + "/metrics")[1] or b"").items():
                if v != 0:
                    missing.discard(name)
            return not missing

        assert wait_for(all_non_zero, 60), f"still zero or absent after 60 s: {sorted(missing)}"
