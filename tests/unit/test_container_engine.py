"""deploy/local/container_engine.py without running podman: the one-line reason the
container tier gives where podman cannot run, and limits no higher than the host's."""

from __future__ import annotations

import re
import resource
from types import ModuleType

import pytest

from tests.support.stack import load_local_script


@pytest.fixture
def engine() -> ModuleType:
    return load_local_script("container_engine")


def test_without_podman_or_apt_get_the_reason_is_one_line(
    engine: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where podman is missing and there is no apt-get to install it, the container tier is
    skipped with one line that names what is missing."""
    missing = {"podman": "/nonexistent/podman", "runc": "/nonexistent/runc"}
    monkeypatch.setattr(engine, "PACKAGES", missing)
    monkeypatch.setattr(engine, "_apt_get", lambda: None)
    assert engine.unavailable_reason() == "podman, runc not installed and there is no apt-get"


def test_container_limits_are_never_above_the_hosts(engine: ModuleType) -> None:
    """Every container gets explicit nofile/nproc limits no higher than this process's own
    (these machines refuse to raise them; podman's defaults are higher)."""
    text = engine.containers_conf_text()
    found = re.search(r'"nofile=(\d+):(\d+)", "nproc=(\d+):(\d+)"', text)
    assert found is not None
    nofile_soft, nofile_hard, nproc_soft, nproc_hard = map(int, found.groups())
    _, host_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    host_nproc, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    assert nofile_soft == nofile_hard
    assert host_nofile == resource.RLIM_INFINITY or nofile_hard <= host_nofile
    assert nproc_soft == nproc_hard
    assert host_nproc == resource.RLIM_INFINITY or nproc_hard <= host_nproc
    assert 'runtime = "runc"' in text
    assert 'cgroup_manager = "cgroupfs"' in text
