#!/usr/bin/env python3
"""Tools for the chart checks, installed once into the cache (no cluster, no network after):

- ``helm`` (Helm 3) and ``promtool`` (Prometheus 3), built with ``go install`` from the Go
  module proxy; promtool takes about 7 minutes to build on two cores, the first time only;
- the CRDs the chart's custom resources are validated against (ServiceMonitor,
  PrometheusRule from prometheus-operator; ScaledObject, TriggerAuthentication from KEDA),
  taken from those projects' Go module sources (downloaded, not built).

``python3 deploy/local/tools.py install`` prints where they are; the chart tests read the
same paths. Cache: ``${XDG_CACHE_HOME:-~/.cache}/stripe-consumer/tools/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack

GO_TOOLS = {
    # name: (package, version)
    "helm": ("helm.sh/helm/v3/cmd/helm", "v3.22.0"),
    "promtool": ("github.com/prometheus/prometheus/cmd/promtool", "v0.316.0"),  # Prometheus 3.x
}
CRDS = {
    # file: (module, version, path in the module)
    "monitoring.coreos.com_servicemonitors.yaml": (
        "github.com/prometheus-operator/prometheus-operator",
        "v0.85.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    ),
    "monitoring.coreos.com_prometheusrules.yaml": (
        "github.com/prometheus-operator/prometheus-operator",
        "v0.85.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ),
    "keda.sh_scaledobjects.yaml": (
        "github.com/kedacore/keda/v2",
        "v2.21.0",
        "config/crd/bases/keda.sh_scaledobjects.yaml",
    ),
    "keda.sh_triggerauthentications.yaml": (
        "github.com/kedacore/keda/v2",
        "v2.21.0",
        "config/crd/bases/keda.sh_triggerauthentications.yaml",
    ),
}


def tools_dir() -> Path:
    return stack.cache_dir() / "tools"


def _go_env() -> dict[str, str]:
    return {
        **os.environ,
        "GOFLAGS": "-mod=mod",
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        "GOMODCACHE": str(stack.cache_dir() / "go-mod"),
    }


def tool_path(name: str) -> Path:
    _, version = GO_TOOLS[name]
    return tools_dir() / f"{name}-{version}" / name


def install_go_tool(name: str) -> Path:
    package, version = GO_TOOLS[name]
    target = tools_dir() / f"{name}-{version}"
    if stack.complete(target):
        return target / name
    with stack.file_lock(tools_dir() / f".lock-{name}"):
        if not stack.complete(target):
            stack.say(f"{name}: building {version} with go install (first run only)...")
            with stack.installing(target) as partial:
                env = {**_go_env(), "GOBIN": str(partial)}
                stack.run(
                    [stack.tool("go"), "install", f"{package}@{version}"],
                    f"go install {name}",
                    env=env,
                )
    return target / name


def install_crds() -> Path:
    # Named by the list, so a CRD added here is fetched into a fresh directory.
    listed = hashlib.sha256(json.dumps(CRDS, sort_keys=True).encode()).hexdigest()[:8]
    target = tools_dir() / f"crds-{listed}"
    if stack.complete(target):
        return target
    with stack.file_lock(tools_dir() / ".lock-crds"), stack.installing(target) as partial:
        for name, (module, version, path) in CRDS.items():
            out = stack.run(
                [stack.tool("go"), "mod", "download", "-json", f"{module}@{version}"],
                f"go mod download {module}",
                env=_go_env(),
            )
            source = Path(json.loads(out)["Dir"]) / path
            shutil.copyfile(source, partial / name)
    return target


def install() -> dict[str, Path]:
    tools_dir().mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        builds = {name: pool.submit(install_go_tool, name) for name in GO_TOOLS}
        crds = install_crds()
        paths = {name: future.result() for name, future in builds.items()}
    return {**paths, "crds": crds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=["install"])
    parser.parse_args()
    try:
        for name, path in install().items():
            stack.say(f"{name}: {path}")
    except stack.StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
