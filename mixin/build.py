#!/usr/bin/env python3
"""Writes mixin/generated/: the Prometheus rule groups and the Grafana dashboards of
session-exporter as JSON, which the jsonnet mixin (mixin.libsonnet) imports.

The rules are authored as YAML in prometheus/rules/ and the dashboards are built by
grafana/build_dashboards.py; the mixin ships the same, so it is generated from them rather
than written twice. JSON, because Debian's jsonnet (0.18) has std.parseYaml but it fails on
the multi-line strings every rule file has (PromQL blocks). Copies, not imports of
../prometheus and ../grafana, so that the directory stands alone when jsonnet-bundler
vendors it. `--check` exits 1 when generated/ is out of date (tests/test_mixin.py runs it).

  python3 mixin/build.py            # rewrite mixin/generated/
  python3 mixin/build.py --check

Needs PyYAML (a dependency of the exporter).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

MIXIN = Path(__file__).resolve().parent
ROOT = MIXIN.parent
GENERATED = MIXIN / "generated"
DASHBOARDS = ROOT / "grafana" / "dashboards"


def rule_groups() -> list[dict[str, Any]]:
    """The groups tools/build-prometheusrule.py puts in the Kubernetes PrometheusRule: the
    same files, the same order, the same checks."""
    spec = importlib.util.spec_from_file_location(
        "build_prometheusrule", ROOT / "tools" / "build-prometheusrule.py"
    )
    assert spec and spec.loader  # noqa: S101 - a build script: stop if the file is gone
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    groups, _sources = tool.load_groups(tool.RULES_DIR)
    return list(groups)


def outputs() -> dict[Path, str]:
    files = {
        GENERATED / "rules.json": json.dumps(
            {"groups": rule_groups()}, indent=2, ensure_ascii=False
        )
        + "\n"
    }
    for board in sorted(DASHBOARDS.glob("*.json")):
        files[GENERATED / "dashboards" / board.name] = board.read_text(encoding="utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when mixin/generated/ differs from the sources"
    )
    args = parser.parse_args(argv)
    files = outputs()
    present = set(GENERATED.rglob("*.json")) if GENERATED.exists() else set()
    stale = sorted(
        str(p.relative_to(MIXIN))
        for p, text in files.items()
        if not p.exists() or p.read_text(encoding="utf-8") != text
    )
    extra = sorted(str(p.relative_to(MIXIN)) for p in present - set(files))
    if args.check:
        if stale or extra:
            print(
                "mixin/generated is out of date, run python3 mixin/build.py: "
                + ", ".join(stale + extra),
                file=sys.stderr,
            )
            return 1
        return 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    for name in extra:
        (MIXIN / name).unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
