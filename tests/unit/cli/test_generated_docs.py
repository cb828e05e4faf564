"""The JSON Schemas in schemas/ and the README's operation table are generated from the
Structs; these tests fail when the checked-in files drift (fix: `make docs`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest

from consumer.cli.generated_docs import operations_table, render, schema_documents
from consumer.cli.layout import project_layout
from consumer.conductor.assets import asset_files
from consumer.conductor.commands import render as render_conductor
from consumer.contract.examples import EXAMPLE_PARAMETERS, conductor_event_payload

ROOT = Path(__file__).resolve().parents[3]
DOCUMENTS = schema_documents()


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_schema_file_matches_the_structs(name: str) -> None:
    """Each checked-in schema equals what the Structs generate."""
    path = ROOT / "schemas" / name
    assert path.exists(), f"{path} missing: run `make docs`"
    assert path.read_text(encoding="utf-8") == render(DOCUMENTS[name]), (
        f"{name} drifted: run `make docs`"
    )


def test_no_stale_schema_files() -> None:
    """No schema file remains for an operation that no longer exists."""
    on_disk = {str(p.relative_to(ROOT / "schemas")) for p in (ROOT / "schemas").rglob("*.json")}
    assert on_disk - set(DOCUMENTS) <= {"asyncapi.json"}


def test_readme_table_matches_the_structs() -> None:
    """The README's operation table is the generated one."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert operations_table() in readme, "README operation table drifted: run `make docs`"


def test_readme_layout_matches_the_docstrings() -> None:
    """The README's project layout is the one generated from the packages' docstrings, in the
    order of the layers contract."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = project_layout(ROOT / "pyproject.toml")
    assert layout in readme, "README project layout drifted: run `make docs`"


def test_request_schema_accepts_conductor_shaped_examples() -> None:
    """The union schema describes `_` fields as allowed (echoed), not as unknown."""
    union = DOCUMENTS["request.json"]
    create_charge = union["$defs"]["CreateCharge"]
    assert create_charge["additionalProperties"] is False
    assert "^_" in create_charge["patternProperties"]
    # every example, shaped as Conductor publishes it, names only declared properties
    for operation, params in EXAMPLE_PARAMETERS.items():
        payload = conductor_event_payload(operation, params)
        definition = next(
            d
            for d in union["$defs"].values()
            if d.get("properties", {}).get("operation", {}).get("enum") == [operation]
        )
        assert set(payload) <= set(definition["properties"]), operation
        assert set(definition.get("required", [])) <= set(payload), operation
    json.dumps(union)  # serialisable
    assert msgspec.json.decode(msgspec.json.encode(union)) == union


CONDUCTOR_FILES = asset_files("stripe.requests", "stripe.replies")


@pytest.mark.parametrize("name", sorted(CONDUCTOR_FILES))
def test_conductor_file_matches_the_generator(name: str) -> None:
    """deploy/conductor/ holds exactly what `make docs` generates."""
    path = ROOT / "deploy" / "conductor" / name
    assert path.exists(), f"{path} missing: run `make docs`"
    assert path.read_text(encoding="utf-8") == render_conductor(CONDUCTOR_FILES[name])


def test_every_operation_has_an_example_workflow_reading_all_its_parameters() -> None:
    """Each operation's workflow maps every parameter from the workflow input."""
    for operation, params in EXAMPLE_PARAMETERS.items():
        workflow = CONDUCTOR_FILES[f"workflows/stripe_{operation}.json"]
        [event_task] = workflow["tasks"]
        assert event_task["type"] == "EVENT"
        assert event_task["asyncComplete"] is True
        assert event_task["inputParameters"]["taskId"] == "${CPEWF_TASK_ID}"
        assert set(params) <= set(event_task["inputParameters"])


def test_every_event_task_in_a_loop_passes_the_loop_iteration() -> None:
    """Inside a DO_WHILE, an EVENT task passes `${<loop_ref>.output.iteration}` (else equal
    iterations share one idempotency key) and can be retried (an inline task definition)."""
    loops = [
        task
        for name, document in CONDUCTOR_FILES.items()
        if name.startswith("workflows/")
        for task in document["tasks"]
        if task["type"] == "DO_WHILE"
    ]
    assert loops, "the examples ship a DO_WHILE workflow"
    for loop in loops:
        for task in loop["loopOver"]:
            assert task["type"] == "EVENT"
            expected = f"${{{loop['taskReferenceName']}.output.iteration}}"
            assert task["inputParameters"]["iteration"] == expected
            assert task["taskDefinition"]["retryCount"] > 0


def test_orkes_handlers_are_rooted_at_the_record_value() -> None:
    """Orkes expressions read `${taskId}`, OSS ones `${payload.taskId}`."""
    oss = json.dumps(CONDUCTOR_FILES["event-handlers/oss.json"])
    orkes = json.dumps(CONDUCTOR_FILES["event-handlers/orkes.json"])
    assert "${payload.taskId}" in oss
    assert "payload" not in orkes
    assert "${taskId}" in orkes
    assert '"kafka:kafka:stripe.replies"' in orkes


def test_readme_documents_every_variable() -> None:
    """Every environment variable consumer/settings/ reads has a row in the README's table."""
    source = "".join(
        path.read_text(encoding="utf-8") for path in (ROOT / "consumer" / "settings").glob("*.py")
    )
    variables = set(re.findall(r'"((?:KAFKA|STRIPE|CONSUMER|LOG)_[A-Z0-9_]+)"', source))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`((?:KAFKA|STRIPE|CONSUMER|LOG)_[A-Z0-9_]+)`", readme))
    assert variables, "no variables found"
    assert variables <= documented, f"undocumented: {sorted(variables - documented)}"
