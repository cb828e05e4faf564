"""The JSON Schemas in schemas/ and the README's operation table are generated from the
Structs; these tests fail when the checked-in files drift (fix: `make docs`)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from consumer.examples import EXAMPLE_PARAMETERS, conductor_event_payload
from consumer.schema_files import operations_table, render, schema_documents

ROOT = Path(__file__).resolve().parents[2]
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
