from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from exporter.config import Config, ConfigError, in_shard, load_config, parse_config, parse_duration
from exporter.textfile import MAX_SECRET_FILE_BYTES
from exporter.yamlfile import load_yaml

from .fakevendor import VENDORS


def account(**fields: object) -> dict[str, object]:
    return {"name": "a", "token": "t", "base_url": "http://127.0.0.1:1", **fields}


def parse(data: object) -> Config:
    return parse_config(data, VENDORS)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("12", 12)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "5m3", "nan", "inf", "-inf", "1e999"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"fake": [{"token": "t"}]}, "fake[0].name", "required"),
        ({"fake": [account(token=None)]}, "fake[0].token", "required"),
        ({"fake": [account(interval="soon")]}, "fake[0].interval", "not a duration"),
        ({"fake": [account(), account()]}, "fake[1].name", "duplicate"),
        ({"fake": [account(colour="red")]}, "fake[0].colour", "unknown field"),
        ({"fake": [account(base_url="http://vendor.example.com")]}, "fake[0].base_url", "loopback"),
        (
            {"fake": [account(base_url="https://u:p@vendor.example.com")]},
            "fake[0].base_url",
            "credentials",
        ),
        ({"global": {"timeout": "0s"}}, "global.timeout", "at least"),
        ({"global": {"jitter": 2}}, "global.jitter", "below 1"),
        ({"glance": []}, "glance", "unknown field"),
        ({"fake": {"name": "x"}}, "fake", "must be a list"),
        ({"fake": ["x"]}, "fake[0]", "must be a mapping"),
        # Found by a probe: each of these passed, or crashed with a traceback.
        ({"global": {"interval": float("nan")}}, "global.interval", "not a number"),
        ({"global": {"interval": float("inf")}}, "global.interval", "at most"),
        ({"global": {"stale_after": "1e12"}}, "global.stale_after", "at most"),
        ({"fake": [account(base_url="http://[::1")]}, "fake[0].base_url", "not a URL"),
        ({"fake": [account(base_url="http://127.0.0.1:99999")]}, "fake[0].base_url", "not a URL"),
        # Probe 11: both were accepted; a fragment swallows every path joined after it.
        ({"fake": [account(base_url="http://127.0.0.1:1/#x")]}, "fake[0].base_url", "fragment"),
        ({"fake": [account(base_url="http://127.0.0.1:1/a b")]}, "fake[0].base_url", "spaces"),
        ({"fake": [account(base_url="http://127.0.0.1:1/\x00")]}, "fake[0].base_url", "control"),
        ({"fake": [account(name="a\n")]}, "fake[0].name", ""),
        # /accounts/fake/x.json is account x's JSON: an account x.json would be unreachable.
        ({"fake": [account(name="x.json")]}, "fake[0].name", "must not end in .json"),
        ({"global": []}, "global", "must be a mapping"),
        ({"global": False}, "global", "must be a mapping"),
        # Found by a probe: an empty file (or one read while written) reloaded into no
        # account at all, with 200; every series and saved state went.
        (None, "", "defines no account"),
        ({"global": {"interval": "1m"}}, "", "defines no account"),
        ({"fake": []}, "", "defines no account"),
        ({"fake": None}, "fake", "lists no account (a file cut short?)"),
    ],
)
def test_errors_name_the_field(data: object, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert info.value.path == path
    assert message in str(info.value)


def test_defaults_and_overrides() -> None:
    config = parse(
        {
            "global": {"interval": "30s"},
            "fake": [account(), account(name="b", interval="2m", timeout="3s")],
        }
    )
    a, b = (acc.common for acc in config.accounts)
    assert (a.interval, a.timeout, a.stale_after) == (30, 20, 300)
    assert (b.interval, b.timeout) == (120, 3)
    assert a.base_url == "http://127.0.0.1:1"


def test_default_base_url_is_the_vendors() -> None:
    config = parse({"fake": [{"name": "a", "token": "t"}]})
    assert config.accounts[0].common.base_url == "https://fake.example.com"


def test_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TOKEN", "from-env")
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    config = parse(
        {
            "fake": [
                account(token="${FAKE_TOKEN}"),
                account(name="b", token=None, token_file=str(secret_file)),
            ]
        }
    )
    tokens = [acc.token.reveal() for acc in config.accounts]  # type: ignore[attr-defined]
    assert tokens == ["from-env", "from-file"]
    assert "from-env" not in repr(config)


def test_a_secret_from_the_environment_that_is_not_utf8_is_refused_with_its_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Found by a probe: its bytes (lone surrogates in Python) crashed the scrubber's
    # set-up, a traceback with no field path, exit status 1.
    monkeypatch.setenv("FAKE_TOKEN", "sec\udcffret99")
    with pytest.raises(ConfigError, match=r"fake\[0\].token: is not valid UTF-8"):
        parse({"fake": [account(token="${FAKE_TOKEN}")]})


def test_missing_env_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fake\[0\].token: environment variable NOPE_X"):
        parse({"fake": [account(token="${NOPE_X}")]})
    with pytest.raises(ConfigError, match=r"fake\[0\].token_file: cannot read"):
        parse({"fake": [account(token=None, token_file=str(tmp_path / "missing"))]})
    with pytest.raises(ConfigError, match="not both"):
        parse({"fake": [account(token_file=str(tmp_path / "x"))]})


def test_a_secret_file_must_be_a_small_regular_file(tmp_path: Path) -> None:
    # A FIFO blocked the read: a reload never answered, and then held up the shutdown.
    # /dev/zero never ends: a MemoryError traceback, exit status 1.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    big.write_bytes(b"k" * (MAX_SECRET_FILE_BYTES + 1))
    for path, problem in (
        (fifo, "not a regular file"),
        (Path("/dev/zero"), "not a regular file"),
        (tmp_path, "cannot read"),
        (big, f"larger than {MAX_SECRET_FILE_BYTES:,} bytes"),
    ):
        with pytest.raises(ConfigError) as info:
            parse({"fake": [account(token=None, token_file=str(path))]})
        assert info.value.path == "fake[0].token_file"
        assert problem in str(info.value)
    fine = tmp_path / "fine"
    fine.write_bytes(b"k" * MAX_SECRET_FILE_BYTES)
    (acc,) = parse({"fake": [account(token=None, token_file=str(fine))]}).accounts
    assert len(acc.token.reveal()) == MAX_SECRET_FILE_BYTES  # type: ignore[attr-defined]


def test_a_config_file_must_be_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(ConfigError, match="not a regular file"):
            load_config(path, VENDORS)


def test_a_secret_file_that_is_not_utf8_never_shows_its_bytes(tmp_path: Path) -> None:
    # Its UnicodeDecodeError, unrefused, carried the bytes into the log on SIGHUP.
    secret_file = tmp_path / "token"
    secret_file.write_bytes(b"S3cr3t-token-\xe9-tail")
    with pytest.raises(ConfigError) as info:
        parse({"fake": [account(token=None, token_file=str(secret_file))]})
    assert info.value.path == "fake[0].token_file"
    assert "S3cr3t" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        parse({"fake": [account(token=None, token_file=f"{tmp_path}/x\0y")]})


@pytest.mark.parametrize(
    "text",
    [
        b"fake:\n  - name: a\n    token: S3cr3t-\xe9\n",
        b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        b"x: " + b"9" * 5000 + b"\n",
    ],
)
def test_a_config_file_unreadable_as_yaml_is_refused_without_its_text(
    tmp_path: Path, text: bytes
) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, VENDORS)
    assert "S3cr3t" not in str(info.value)


def test_load_config_reports_yaml_position(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("fake:\n  - name: a\n   bad: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(path, VENDORS)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("fake:\n\t- name: a\n", "found character '\\t' that cannot start any token"),
        ("fake:\n  - {name: a, token: t}\n---\nfake: []\n", "but found another document"),
        ("fake:\n  - {name: a, token: !!python/object:os.system x}\n", "constructor for the tag"),
    ],
)
def test_a_yaml_error_says_what_is_wrong_but_never_the_line(
    tmp_path: Path, text: str, reason: str
) -> None:
    # Probe 11: only a line and a column; a tab, a second document or a tag went unsaid.
    # PyYAML's own message also quotes the line, which may hold a pasted secret.
    path = tmp_path / "c.yaml"
    path.write_text(text.replace("token: t", "token: S3cr3t-in-line"))
    with pytest.raises(ConfigError) as info:
        load_config(path, VENDORS)
    assert reason in str(info.value) and " at line " in str(info.value)
    assert "S3cr3t" not in str(info.value)


ACCOUNT_YAML = "  - name: a\n    token: t\n    base_url: http://127.0.0.1:1\n"


def refused_file(tmp_path: Path, text: str) -> ConfigError:
    """The error `load_config` refuses a config file of `text` with."""
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(config, VENDORS)
    return info.value


@pytest.mark.parametrize(
    ("text", "path", "line"),
    [
        # PyYAML keeps the last of the two: the first list of accounts vanished unnoticed.
        ("fake:\n" + ACCOUNT_YAML + "fake:\n" + ACCOUNT_YAML, "fake", 5),
        ("fake:\n" + ACCOUNT_YAML + "    token: S3cr3t\n", "fake[0].token", 5),
        ("global:\n  interval: 60s\n  interval: 1s\nfake:\n" + ACCOUNT_YAML, "global.interval", 3),
    ],
)
def test_a_key_given_twice_is_refused_with_its_path(
    tmp_path: Path, text: str, path: str, line: int
) -> None:
    error = refused_file(tmp_path, text)
    assert error.path == path
    assert str(error) == f"{path}: given twice (again at line {line})"
    assert "S3cr3t" not in str(error)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("fake:\n" + ACCOUNT_YAML.replace("name: a", 'name: "a\\ud800"'), "fake[0].name"),
        ("fake:\n" + ACCOUNT_YAML + '    "\\udfff": x\n', "fake[0].?"),
    ],
)
def test_a_string_that_is_not_text_is_refused_with_its_path(
    tmp_path: Path, text: str, path: str
) -> None:
    # Loaded, it failed every page that showed it (`/config`: a 500, "surrogates not
    # allowed").
    error = refused_file(tmp_path, text)
    assert error.path == path
    assert "not text: a lone surrogate escape (line " in str(error)


@pytest.mark.parametrize("number", ["012345", "0x1F", "190:20:30", "-017"])
def test_an_unquoted_number_in_another_base_is_refused_with_its_path(
    tmp_path: Path, number: str
) -> None:
    # Found by a probe: YAML 1.1 read `token: 012345` as octal, and the key sent was
    # "5349", with nothing said.
    error = refused_file(tmp_path, "fake:\n" + ACCOUNT_YAML.replace("token: t", f"token: {number}"))
    assert error.path == "fake[0].token"
    assert "a number YAML reads in another base" in str(error) and "quote it" in str(error)


def test_quoted_numbers_and_decimal_ones_load_as_before(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("global:\n  max_body_bytes: 16_777_216\nfake:\n" + ACCOUNT_YAML)
    assert load_config(config, VENDORS).global_.max_body_bytes == 16_777_216


def test_merge_keys_may_override_and_aliases_load_as_before(tmp_path: Path) -> None:
    # `<<` is how YAML shares fields between accounts; a key after it overrides, as it may.
    text = (
        "defaults: &defaults\n  token: t\n  base_url: http://127.0.0.1:1\n"
        "fake:\n  - <<: *defaults\n    name: a\n    token: mine\n"
        "  - <<: *defaults\n    name: b\n"
    )
    data = yaml.safe_load(text)
    assert load_yaml(text) == data
    loop = "a: &x [*x]\n"  # an alias inside itself: walked once, not forever
    inside = load_yaml(loop)["a"]
    assert inside[0] is inside


def test_shards_partition_accounts_exactly() -> None:
    data = {"fake": [account(name=f"acct-{i}") for i in range(200)]}
    everything = {a.common.name for a in parse(data).accounts}
    for count in (1, 2, 3, 7):
        seen: list[str] = []
        for index in range(count):
            shard = parse_config(data, VENDORS, shard=(index, count))
            seen.extend(a.common.name for a in shard.accounts)
        assert sorted(seen) == sorted(everything)  # each account in exactly one shard
    # stable: the same account lands in the same shard every time
    acc = parse(data).accounts[5].common
    assert in_shard(acc, 0, 3) == in_shard(acc, 0, 3)
