"""``python -m consumer run`` until it exits by itself (a start-up refusal), and what a
configuration error must look like: exit 2, every line JSON, exactly one error line naming
the setting, no traceback and no "Unclosed ..." from asyncio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from tests.support.stack import ROOT


@dataclass(frozen=True)
class Exit:
    code: int
    output: str  # stdout and stderr

    def lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.strip()]


def run_until_exit(environ: dict[str, str], timeout_s: float = 90) -> Exit:
    """Run the service with these settings (over the test's environment) until it exits."""
    env = {
        **os.environ,
        "STRIPE_API_KEY": "sk_test_123",
        "LOG_FORMAT": "json",
        "CONSUMER_HTTP_HOST": "127.0.0.1",
        "CONSUMER_HTTP_PORT": "0",
        **environ,
    }
    done = subprocess.run(
        [sys.executable, "-m", "consumer", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout_s,
        check=False,
    )
    return Exit(done.returncode, done.stdout.decode(errors="replace"))


def assert_configuration_error(result: Exit, setting: str, cause: str) -> dict[str, Any]:
    """Exit 2 with one error line naming ``setting``, whose cause says ``cause``; return it."""
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    assert "Unclosed" not in result.output
    entries = [json.loads(line) for line in result.lines()]  # every line is JSON
    errors = [entry for entry in entries if entry["level"] == "error"]
    assert len(errors) == 1, result.output
    error: dict[str, Any] = errors[0]
    assert setting in error["setting"], error
    assert cause in error["cause"], error
    assert error["event"].startswith("configuration error"), error
    return error
