"""The stack directory DIR (default ``<repo>/.local``): what one stack keeps between commands,
written atomically, and the lock that serialises up/down/restart on it::

    stack.env            KAFKA_BOOTSTRAP_SERVERS, STRIPE_API_BASE, REDIS_URL[, CONDUCTOR_URL]
    state.json           ports and settings, so restarts reuse the same addresses
    pids/<name>.pid      one per started component (kafka, stripe-mock, redis, conductor)
    logs/<name>.log      stdout and stderr of each component
    kafka/               server.properties, log4j2.properties, data/ (the KRaft log dir)
    redis/               appendonly files
    conductor/           conductor.properties, conductor.db, tmp/, payload/
    .lock                serialises up/down/restart on this DIR
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .downloads import file_lock

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DIR = REPO_ROOT / ".local"


def resolve(dir: Path | str | None) -> Path:
    return (Path(dir) if dir is not None else DEFAULT_DIR).expanduser().resolve()


@contextmanager
def locked(dir: Path) -> Iterator[None]:
    with file_lock(dir / ".lock"):
        yield


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def load_state(dir: Path) -> dict[str, Any]:
    try:
        loaded = json.loads((dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def save_state(dir: Path, state: dict[str, Any]) -> None:
    write_atomic(dir / "state.json", json.dumps(state, indent=2, sort_keys=True) + "\n")


def write_env(dir: Path, env: dict[str, str]) -> None:
    write_atomic(dir / "stack.env", "".join(f"{k}={v}\n" for k, v in env.items()))
