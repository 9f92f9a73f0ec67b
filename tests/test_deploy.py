"""Deployment files: Dockerfile, compose stack, Kubernetes manifests, systemd unit.

There is no container engine nor cluster here, so each path is checked with the tools that
work offline (hadolint, docker-compose config, promtool, amtool, kubernetes-validate,
systemd-analyze verify) and, for the wiring between files, by reading them: every exporter
command line in them is parsed with the exporter's own flag parser, the configs they ship
are loaded by the exporter's own config parser, and the names that tie one file to another
(ports, labels, mounts, services) are compared.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import DEFAULT_PORT, build_parser
from exporter.config import parse_config
from exporter.registry import VENDORS
from tests.support import require_tool, skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S = DEPLOY / "kubernetes"
UNIT = DEPLOY / "systemd" / "session-exporter.service"
CONFIG_PATH = "/etc/session-exporter/config.yaml"
EXPORTER = [sys.executable, "-c", "from exporter.cli import main; main()"]


# --------------------------------------------------------------------------- helpers


def python_tool(name: str) -> str:  # noqa: RET503 - skip_or_fail never returns
    """A tool that a pip package installs next to the interpreter running the tests (the
    venv's bin/, not necessarily on PATH). Skips when absent, fails in CI."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    skip_or_fail(f"{name} not installed (pip install {name}?)")


def python_module(name: str, package: str) -> None:
    if importlib.util.find_spec(name) is None:
        skip_or_fail(f"{package} not installed")


def run(
    cmd: list[str], cwd: Path | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def parse_flags(argv: list[str]) -> Any:
    """The exporter's own parser: a misspelt or removed flag fails here (SystemExit)."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse prints the reason on stderr
        raise AssertionError(f"the exporter rejects these flags: {argv}") from exc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def instruction(name: str) -> list[str]:
    return [rest for keyword, rest in dockerfile_instructions() if keyword == name]


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = python_tool("hadolint")
    result = run([hadolint, "--no-color", str(ROOT / "Dockerfile")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contract() -> None:
    froms = instruction("FROM")
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    args = " ".join(instruction("ARG"))
    assert "slim" in froms[-1] or "slim" in args, "slim Python base"
    user = instruction("USER")[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "numeric non-root USER (runAsNonRoot can check it)"
    health = instruction("HEALTHCHECK")
    assert health and "healthcheck.py" in health[0]
    assert "/-/healthy" in " ".join(instruction("ENV"))
    assert str(DEFAULT_PORT) in " ".join(instruction("EXPOSE"))

    entrypoint = json.loads(instruction("ENTRYPOINT")[-1])
    assert entrypoint[0] == "session-exporter"
    plain = parse_flags(entrypoint[1:])
    assert plain.config_file == CONFIG_PATH and not plain.demo
    assert plain.listen_address == f":{DEFAULT_PORT}", "all interfaces of the container"
    demo = parse_flags([*entrypoint[1:], "--demo"])
    assert demo.demo and demo.listen_address == f":{DEFAULT_PORT}", "--demo reachable from outside"


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore syntax: * and ? stay within a path segment, ** crosses them."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex)


def dockerignore_included(rel: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        regex = _docker_pattern(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            included = negate
    return included


def test_build_context_holds_what_the_image_needs(tmp_path: Path) -> None:
    files = []
    for folder, dirs, names in os.walk(ROOT):
        # Big trees no image needs: not walking them keeps this quick (.venv in CI).
        dirs[:] = [
            d
            for d in dirs
            if d not in {".git", ".venv", "node_modules"} and not d.endswith("_cache")
        ]
        files += [(Path(folder) / n).relative_to(ROOT).as_posix() for n in names]
    context = [f for f in files if dockerignore_included(f)]
    assert not dockerignore_included(".venv/bin/python")
    assert not dockerignore_included(".git/config")
    for needed in (
        "pyproject.toml",
        "exporter/__init__.py",
        "exporter/cli.py",
        "deploy/docker/healthcheck.py",
    ):
        assert needed in context, f"{needed} is left out of the build context"
    for source in instruction("COPY"):
        parts = source.split()
        if not parts[0].startswith("--from") and parts[0] != ".":
            assert parts[0] in context, f"COPY {parts[0]}: not in the build context"
    leaked = [
        f
        for f in context
        if f.startswith(("tests/", "deploy/compose/", "tools/"))
        or "__pycache__" in f
        or f.endswith(".egg-info/PKG-INFO")
    ]
    assert not leaked, f"kept out of the image on purpose: {leaked[:5]}"

    # The build stage's `pip install .`, from the context alone. Build isolation fetches
    # setuptools from PyPI unless this environment can already build wheels.
    can_build = all(importlib.util.find_spec(m) for m in ("setuptools", "wheel"))
    isolation = ["--no-build-isolation"] if can_build else []
    ctx = tmp_path / "context"
    for rel in context:
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, ctx / rel)
    result = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            *isolation,
            "--no-cache-dir",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ctx),
        ],
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert list((tmp_path / "dist").glob("session_exporter-*.whl"))


def test_healthcheck_script_against_a_running_exporter() -> None:
    script = DEPLOY / "docker" / "healthcheck.py"
    port = free_port()
    url = f"http://127.0.0.1:{port}/-/healthy"
    env = {**os.environ, "HEALTHCHECK_URL": url}
    down = run([sys.executable, str(script)], env=env, timeout=30)
    assert down.returncode == 1, "nothing listens yet: unhealthy"
    proc = subprocess.Popen(
        [*EXPORTER, "--demo", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:  # waiting for an external process to bind its port, bounded
            up = run([sys.executable, str(script)], env=env, timeout=30)
            if up.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert up.returncode == 0, up.stderr
        wrong = run(
            [sys.executable, str(script)],
            timeout=30,
            env={**env, "HEALTHCHECK_URL": f"http://127.0.0.1:{port}/no-such-page"},
        )
        assert wrong.returncode == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0, "SIGTERM exits 0"


# --------------------------------------------------------------------------- compose


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        (COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8")
    )
    return document


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path -> host path of a service's bind mounts (named volumes left out)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (COMPOSE_DIR / source).resolve()
    return mounts


def host_path(mounts: dict[str, Path], container_path: str) -> Path | None:
    for target, source in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target) :].lstrip("/")
    return None


@pytest.mark.parametrize(
    "files", [["compose.yaml"], ["compose.yaml", "compose.accounts.yaml"]], ids=["demo", "accounts"]
)
def test_compose_file_is_valid(files: list[str]) -> None:
    require_tool("docker-compose")
    cmd = ["docker-compose"]
    for f in files:
        cmd += ["-f", f]
    result = run([*cmd, "config", "--quiet"], cwd=COMPOSE_DIR, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def exporter_argv(service: dict[str, Any]) -> list[str]:
    entrypoint = json.loads(instruction("ENTRYPOINT")[-1])
    assert "entrypoint" not in service, "the image's entrypoint is the one the tests check"
    return [*entrypoint[1:], *service.get("command", [])]


def test_compose_wiring() -> None:
    doc = compose()
    services = doc["services"]
    exporter = services["session-exporter"]
    assert (COMPOSE_DIR / exporter["build"]["context"] / exporter["build"]["dockerfile"]).is_file()
    demo = parse_flags(exporter_argv(exporter))
    assert demo.demo, "the stack runs the demo by default"
    assert demo.listen_address == f":{DEFAULT_PORT}", "reachable from the Prometheus container"

    override = yaml.safe_load((COMPOSE_DIR / "compose.accounts.yaml").read_text())
    real = parse_flags(exporter_argv(override["services"]["session-exporter"]))
    assert not real.demo
    mounts = bind_mounts(override["services"]["session-exporter"])
    assert host_path(mounts, real.config_file) == COMPOSE_DIR / "config.yaml"

    prom = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    targets = {
        t
        for job in prom["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    }
    assert f"session-exporter:{DEFAULT_PORT}" in targets
    jobs = {job["job_name"] for job in prom["scrape_configs"]}
    assert "session-exporter" in jobs, 'the alert rules select job="session-exporter"'
    for target in targets:
        host = target.split(":")[0]
        assert host == "localhost" or host in services, f"{target}: no such compose service"
    am = [
        t
        for a in prom["alerting"]["alertmanagers"]
        for sc in a["static_configs"]
        for t in sc["targets"]
    ]
    assert am == ["alertmanager:9093"]

    for name, service in services.items():
        for target, source in bind_mounts(service).items():
            if source.is_relative_to(ROOT / "grafana"):
                continue  # test_compose_grafana_provisioning
            assert source.exists(), f"{name}: mounts {source} at {target}, which is missing"


def compose_rule_files(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Lay out /etc/prometheus of the compose Prometheus container under tmp_path."""
    service = compose()["services"]["prometheus"]
    config_flag = next(a for a in service["command"] if a.startswith("--config.file="))
    config_in_container = config_flag.split("=", 1)[1]
    etc = Path(config_in_container).parent
    mounts = bind_mounts(service)
    root = tmp_path / "etc-prometheus"
    for target, source in mounts.items():
        if Path(target).is_relative_to(etc):
            dest = root / Path(target).relative_to(etc)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest)
            else:
                shutil.copy2(source, dest)
    config = root / Path(config_in_container).relative_to(etc)
    patterns = yaml.safe_load(config.read_text())["rule_files"]
    matched = sorted({p for pattern in patterns for p in root.glob(pattern)})
    sources = [mounts_source(mounts, etc, root, p) for p in matched]
    return config, sources


def mounts_source(mounts: dict[str, Path], etc: Path, root: Path, copied: Path) -> Path:
    found = host_path(mounts, str(etc / copied.relative_to(root)))
    assert found is not None
    return found


def load_build_tool() -> Any:
    spec = importlib.util.spec_from_file_location(
        "build_prometheusrule", ROOT / "tools" / "build-prometheusrule.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compose_prometheus_loads_exactly_our_rule_files(tmp_path: Path) -> None:
    require_tool("promtool")
    config, matched = compose_rule_files(tmp_path)
    tool = load_build_tool()
    _, sources = tool.load_groups(tool.RULES_DIR)
    expected = sorted(tool.RULES_DIR / s for s in sources)
    assert matched == expected, (
        "the compose Prometheus (rule_files globs) and the Kubernetes PrometheusRule "
        f"(tools/build-prometheusrule.py) must load the same rule files: {matched} != {expected}"
    )
    result = run(["promtool", "check", "config", str(config)], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_alertmanager_config() -> None:
    require_tool("amtool")
    result = run(["amtool", "check-config", str(COMPOSE_DIR / "alertmanager.yml")], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    mounts = bind_mounts(compose()["services"]["alertmanager"])
    assert COMPOSE_DIR / "alertmanager.yml" in mounts.values()


def test_compose_grafana_provisioning() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = bind_mounts(grafana)
    provisioning = host_path(mounts, "/etc/grafana/provisioning")
    assert provisioning is not None, "grafana/provisioning is mounted where Grafana reads it"
    assert provisioning.is_dir(), f"{provisioning} is mounted but missing from the repo"
    services = compose()["services"]

    dashboards = sorted((provisioning / "dashboards").glob("*.y*ml"))
    assert dashboards, "a dashboard provider"
    for path in dashboards:
        for provider in yaml.safe_load(path.read_text())["providers"]:
            inside = provider["options"]["path"]
            on_host = host_path(mounts, inside)
            assert on_host is not None, f"{path.name}: {inside} is not mounted into Grafana"
            assert on_host.is_dir(), f"{path.name}: {inside} -> {on_host}, which is missing"
            assert list(on_host.rglob("*.json")), f"{on_host}: no dashboard JSON"

    sources = sorted((provisioning / "datasources").glob("*.y*ml"))
    assert sources, "a datasource"
    for path in sources:
        for source in yaml.safe_load(path.read_text()).get("datasources", []):
            if source.get("type") == "prometheus":
                host, _, port = source["url"].split("//")[-1].rstrip("/").partition(":")
                assert host in services and port == "9090", (
                    f"{path.name}: {source['url']} is not the compose stack's Prometheus"
                )


# --------------------------------------------------------------------------- Kubernetes


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {p.name: yaml_docs(p) for p in sorted(K8S.glob("*.yaml"))}


def find(kind: str, file: str | None = None) -> dict[str, Any]:
    docs = [
        d
        for name, ds in manifests().items()
        for d in ds
        if d["kind"] == kind and (file is None or name == file)
    ]
    assert len(docs) == 1, f"one {kind} expected, found {len(docs)}"
    return docs[0]


CORE_KINDS = {"ConfigMap", "Secret", "Service", "Deployment", "StatefulSet"}


@pytest.mark.parametrize("version", ["1.28.0", "latest"])
def test_kubernetes_manifests_validate(version: str) -> None:
    python_module("kubernetes_validate", "kubernetes-validate")
    import kubernetes_validate

    if version == "latest":
        version = kubernetes_validate.latest_version()
    seen = set()
    for name, docs in manifests().items():
        for doc in docs:
            if doc["kind"] in CORE_KINDS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    raise AssertionError(f"{name}: {exc.message}") from None
                seen.add(doc["kind"])
    assert seen == CORE_KINDS


def test_kustomization_builds() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    for resource in resources:
        assert (K8S / resource).is_file()
    assert "secret.example.yaml" not in resources, "credentials are not applied from git"
    assert "statefulset-sharded.yaml" not in resources, "either the Deployment or the shards"
    if shutil.which("kubectl") is None:
        return  # kubectl (with kustomize built in) is optional: the file list is checked above
    result = run(["kubectl", "kustomize", str(K8S)], timeout=60)
    assert result.returncode == 0, result.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(result.stdout) if d)
    assert kinds == ["ConfigMap", "Deployment", "PrometheusRule", "Service", "ServiceMonitor"]


def workloads() -> list[dict[str, Any]]:
    return [find("Deployment"), find("StatefulSet")]


def container_argv(workload: dict[str, Any], shard_index: str = "0") -> list[str]:
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", shard_index) for e in container.get("env", [])}
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]


def test_kubernetes_wiring() -> None:
    service = find("Service")
    monitor = find("ServiceMonitor")
    configmap = find("ConfigMap")
    secret = find("Secret")
    assert service["metadata"]["name"] == "session-exporter", (
        "the ServiceMonitor's job label is the Service name; the rules expect session-exporter"
    )
    port_names = {p["name"] for p in service["spec"]["ports"]}
    service_labels = service["metadata"]["labels"].items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint.get("path", "/metrics") == "/metrics"

    for workload in workloads():
        kind = workload["kind"]
        pod = workload["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert service["spec"]["selector"].items() <= labels.items(), f"{kind}: Service misses it"
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        user = int(instruction("USER")[-1].split(":")[0])
        assert spec["securityContext"]["runAsUser"] == user, "the image's user"
        (container,) = spec["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        flags = parse_flags(container_argv(workload))
        assert flags.listen_address == f":{DEFAULT_PORT}" and not flags.demo
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for p in service["spec"]["ports"]:
            assert ports[p["targetPort"]] == DEFAULT_PORT
        assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
        assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"

        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        config_dir, config_name = flags.config_file.rsplit("/", 1)
        assert mounts[config_dir]["configMap"]["name"] == configmap["metadata"]["name"]
        assert config_name in configmap["data"]
        secret_dirs = [
            path
            for path, v in mounts.items()
            if v.get("secret", {}).get("secretName") == secret["metadata"]["name"]
        ]
        assert len(secret_dirs) == 1, f"{kind}: mounts the credentials Secret once"

    deployment = find("Deployment")
    assert deployment["spec"]["replicas"] == 1, "two replicas would poll every account twice"
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "no overlap during a rollout"


def test_kubernetes_shards_split_the_accounts_exactly() -> None:
    shards = find("StatefulSet")
    replicas = shards["spec"]["replicas"]
    assert replicas >= 2
    container = shards["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert int(env["SHARD_COUNT"]["value"]) == replicas, "SHARD_COUNT must equal replicas"
    assert shards["spec"]["serviceName"] == find("Service")["metadata"]["name"]

    # Each pod's flags, through the exporter's own parser, and an estate of accounts.
    data: dict[str, Any] = {
        "glance": [{"name": f"g{i}", "partner_id": i + 1, "api_key": "k"} for i in range(60)]
    }
    everyone = {a.common.name for a in parse_config(data, VENDORS).accounts}
    polled: list[str] = []
    for index in range(replicas):
        flags = parse_flags(container_argv(shards, shard_index=str(index)))
        assert flags.shard == (index, replicas)
        polled += [a.common.name for a in parse_config(data, VENDORS, shard=flags.shard).accounts]
    assert sorted(polled) == sorted(everyone), "every account in exactly one shard"


def test_kubernetes_config_is_valid_with_the_example_secret(tmp_path: Path) -> None:
    """The ConfigMap's config loads with the exporter's parser, its credentials read from
    files named like the keys of the example Secret, where the pod mounts them."""
    configmap = find("ConfigMap")
    secret = find("Secret")
    spec = find("Deployment")["spec"]["template"]["spec"]
    secret_dir = next(
        m["mountPath"]
        for m in spec["containers"][0]["volumeMounts"]
        if m["name"] == next(v["name"] for v in spec["volumes"] if "secret" in v)
    )
    text = configmap["data"]["config.yaml"]
    referenced = set(re.findall(re.escape(secret_dir) + r"/([\w.-]+)", text))
    assert referenced == set(secret["stringData"]), "config files <-> Secret keys"
    for key, value in secret["stringData"].items():
        (tmp_path / key).write_text(value)
    data = yaml.safe_load(text.replace(secret_dir, str(tmp_path)))
    config = parse_config(data, VENDORS, source="configmap")
    assert {a.common.vendor for a in config.accounts} == {"glance", "securevideo", "rescue"}


def test_prometheusrule_is_generated_from_the_rules(tmp_path: Path) -> None:
    tool = load_build_tool()
    committed = (K8S / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == tool.build(tool.RULES_DIR), (
        "deploy/kubernetes/prometheusrule.yaml is out of date: "
        "run python3 tools/build-prometheusrule.py"
    )
    rule = find("PrometheusRule")
    groups, _ = tool.load_groups(tool.RULES_DIR)
    assert rule["spec"]["groups"] == groups
    if groups:  # what the operator will hand Prometheus is a valid rule file
        require_tool("promtool")
        extracted = tmp_path / "operator.rules.yml"
        extracted.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        result = run(["promtool", "check", "rules", str(extracted)], timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_prometheusrule_tool_rejects_duplicate_groups_and_skips_unit_tests(tmp_path: Path) -> None:
    tool = load_build_tool()
    assert "groups: []" in tool.build(tmp_path), "no rule files yet: an empty PrometheusRule"
    (tmp_path / "rules").mkdir()
    group = {"groups": [{"name": "g", "rules": [{"record": "a:b", "expr": "vector(1)"}]}]}
    (tmp_path / "rules" / "a.rules.yml").write_text(yaml.safe_dump(group))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "overrides.rules.yml").write_text(yaml.safe_dump(group))
    (tmp_path / "rules_test.yml").write_text(
        yaml.safe_dump({"rule_files": ["rules/a.rules.yml"], "tests": []})
    )
    groups, sources = tool.load_groups(tmp_path)
    assert sources == ["rules/a.rules.yml"] and groups == group["groups"]
    (tmp_path / "rules" / "b.rules.yml").write_text(yaml.safe_dump(group))
    with pytest.raises(tool.BuildError, match="'g' is in both"):
        tool.load_groups(tmp_path)


# --------------------------------------------------------------------------- systemd


def unit_entries() -> list[tuple[str, str, str]]:
    section, entries = "", []
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            entries.append((section, key, value))
    return entries


def unit_values(key: str) -> list[str]:
    return [v for s, k, v in unit_entries() if s == "Service" and k == key]


def test_systemd_unit_contract() -> None:
    assert unit_values("DynamicUser") == ["yes"]
    assert unit_values("ProtectSystem") == ["strict"]
    for key in (
        "ProtectHome",
        "NoNewPrivileges",
        "PrivateTmp",
        "PrivateDevices",
        "RestrictNamespaces",
        "MemoryDenyWriteExecute",
    ):
        assert unit_values(key) == ["yes"], key
    assert unit_values("CapabilityBoundingSet") == [""]
    assert "/bin/kill -HUP $MAINPID" in unit_values("ExecReload")
    (exec_start,) = unit_values("ExecStart")
    argv = [a for a in shlex.split(exec_start) if not a.startswith("$")]
    assert argv[0].endswith("/session-exporter")
    flags = parse_flags(argv[1:])
    assert flags.config_file == CONFIG_PATH and not flags.demo
    for check in [*unit_values("ExecStartPre"), unit_values("ExecReload")[0]]:
        checked = parse_flags(shlex.split(check)[1:])
        assert checked.config_check and checked.config_file == flags.config_file
    assert unit_values("ConfigurationDirectory") == ["session-exporter"]


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    require_tool("systemd-analyze")
    binary = Path(sys.executable).parent / "session-exporter"
    if not binary.exists():
        skip_or_fail("the session-exporter console script is not installed beside python")
    text = UNIT.read_text(encoding="utf-8")
    # verify wants the binaries to exist: point at the installed console script.
    unit = tmp_path / "session-exporter.service"
    unit.write_text(text.replace("/opt/session-exporter/bin/session-exporter", str(binary)))
    result = run(
        ["systemd-analyze", "verify", str(unit)],
        cwd=tmp_path,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "session-exporter.service" in line
    ]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_systemd_config_check_matches_the_exporter(tmp_path: Path) -> None:
    """ExecStartPre's --config.check exits non-zero on a bad config, so a unit with one
    never starts and `systemctl reload` reports it."""
    bad = tmp_path / "config.yaml"
    bad.write_text("glance:\n  - name: acme\n")
    result = run([*EXPORTER, "--config.check", f"--config.file={bad}"], timeout=60)
    assert result.returncode == 2 and "config error" in result.stderr
