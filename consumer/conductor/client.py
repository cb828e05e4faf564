"""A small client for Conductor's REST API: what registering and the examples need.

Registration is idempotent: an event handler that exists is updated (PUT), a new one added
(POST); workflow definitions go through ``PUT /api/metadata/workflow``, which creates or
updates. Standard library HTTP, so ``register`` runs anywhere the package is installed.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any


class ConductorError(RuntimeError):
    """Conductor answered with an error (the message carries its status and body)."""


class ConductorClient:
    def __init__(self, base_url: str, timeout_s: float = 15.0) -> None:
        self._api = base_url.rstrip("/") + "/api"
        self._timeout = timeout_s
        # Never send requests to a local Conductor through an environment's proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310  (the operator's Conductor URL)
            self._api + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json, text/plain"},
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise ConductorError(f"{method} {path}: HTTP {error.code}: {detail}") from None
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text  # e.g. the id a workflow start returns, as plain text

    def upsert_event_handlers(self, handlers: Sequence[dict[str, Any]]) -> list[str]:
        existing = {handler["name"] for handler in self._call("GET", "/event") or []}
        done = []
        for handler in handlers:
            verb = "PUT" if handler["name"] in existing else "POST"
            self._call(verb, "/event", handler)
            done.append(
                f"{'updated' if verb == 'PUT' else 'added'} event handler {handler['name']}"
            )
        return done

    def upsert_workflows(self, workflows: Sequence[dict[str, Any]]) -> list[str]:
        if workflows:
            self._call("PUT", "/metadata/workflow", list(workflows))
        return [f"registered workflow {workflow['name']}" for workflow in workflows]

    def listened_events(self) -> set[str]:
        """The events Conductor listens to now (``kafka:<topic>``): its event queue manager's
        queues (``GET /api/admin/queues``). A new handler's event joins them only at the
        manager's next refresh, every 60 s (not configurable in Conductor 3.x)."""
        queues = self._call("GET", "/admin/queues")
        return set(queues) if isinstance(queues, dict) else set()

    def wait_listening(
        self,
        events: set[str],
        timeout_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> float:
        """Block until Conductor listens to every event; the seconds it took. ConductorError
        when it does not within timeout_s (saying which events are still missing)."""
        started = clock()
        while missing := events - self.listened_events():
            if clock() - started > timeout_s:
                raise ConductorError(
                    f"Conductor does not listen to {', '.join(sorted(missing))} after "
                    f"{timeout_s:.0f} s (it picks up new event handlers every 60 s)"
                )
            sleep(1.0)
        return clock() - started

    def start_workflow(
        self, name: str, workflow_input: dict[str, Any], *, correlation_id: str | None = None
    ) -> str:
        path = f"/workflow/{name}"
        if correlation_id:
            path += f"?correlationId={urllib.parse.quote(correlation_id)}"
        return str(self._call("POST", path, workflow_input))

    def workflow(self, workflow_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/workflow/{workflow_id}?includeTasks=true")
        return result
