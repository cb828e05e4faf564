"""schemas/asyncapi.yaml: valid against the official AsyncAPI 3.0 JSON Schema (vendored from
@asyncapi/specs), every reference resolving, one message per request type, and identical to
what the Structs generate (fix a drift with `make docs`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import yaml

from consumer.cli.asyncapi import asyncapi_document, render_yaml
from consumer.contract.examples import EXAMPLE_PARAMETERS, conductor_event_payload
from consumer.contract.requests import OPERATION_NAMES

ROOT = Path(__file__).resolve().parents[3]
CHECKED_IN = ROOT / "schemas" / "asyncapi.yaml"
OFFICIAL = ROOT / "tests" / "support" / "asyncapi" / "asyncapi-3.0.0.schema.json"


def checked_in() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CHECKED_IN.read_text(encoding="utf-8"))
    return document


def test_checked_in_document_matches_the_structs() -> None:
    """The file is what the generator writes now, and YAML reads back the same document."""
    assert CHECKED_IN.read_text(encoding="utf-8") == render_yaml(asyncapi_document()), (
        "schemas/asyncapi.yaml drifted: run `make docs`"
    )
    assert checked_in() == asyncapi_document()


def test_document_is_valid_asyncapi_3() -> None:
    """The official AsyncAPI 3.0.0 schema finds no error."""
    official = json.loads(OFFICIAL.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(official)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(checked_in())]
    assert errors == []


def test_the_official_schema_catches_a_broken_document() -> None:
    """The validation can fail: a channel without its required shape is reported."""
    official = json.loads(OFFICIAL.read_text(encoding="utf-8"))
    broken = checked_in()
    broken["operations"]["sendReplies"]["action"] = "publish"  # AsyncAPI 2's word
    assert not jsonschema.Draft7Validator(official).is_valid(broken)


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_every_reference_resolves_inside_the_document() -> None:
    """No `$ref` points at a missing component (the official schema does not check this)."""
    document = checked_in()
    for ref in refs(document):
        assert ref.startswith("#/"), ref
        resolve(document, ref)


def test_every_operation_is_a_message_on_the_request_channel() -> None:
    """One message per request type (a new operation appears by itself)."""
    document = checked_in()
    assert list(document["channels"]["requests"]["messages"]) == list(OPERATION_NAMES)
    assert list(document["channels"]["meterEvents"]["messages"]) == ["create_meter_event"]
    assert {c["address"] for c in document["channels"].values()} == {
        "stripe.requests",
        "stripe.meter-events",
        "stripe.replies",
        "stripe.dlq",
        "stripe.meter-errors",
    }


def test_message_payloads_accept_the_examples() -> None:
    """Each operation's example, shaped as Conductor publishes it, is valid against its
    message's payload schema (the references resolved in the document)."""
    document = checked_in()
    for operation, params in EXAMPLE_PARAMETERS.items():
        message = document["components"]["messages"][operation]
        schema = {**message["payload"], "components": document["components"]}
        payload = msgspec.json.decode(
            msgspec.json.encode(conductor_event_payload(operation, params))
        )
        jsonschema.Draft7Validator(schema).validate(payload)
