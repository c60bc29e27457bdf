"""The generated JSON Schemas and AsyncAPI document: committed, current, and describing the contract."""

from __future__ import annotations

import json
from pathlib import Path

from shared.events.catalogue import registry
from shared.events.schema_export import SCHEMA_DIR, render_all, stale_files, write_all


def test_committed_schemas_match_the_models() -> None:
    stale = stale_files()
    assert not stale, f"stale event schemas {stale}: run `make schemas` and commit shared/events/schemas/"


def test_export_is_deterministic() -> None:
    first = render_all()
    assert first == render_all()
    assert all(content.endswith(b"\n") for content in first.values())


def test_every_registered_version_has_a_schema_with_id_and_personal_data() -> None:
    files = render_all()
    for model in registry:
        type_, version = model.model_fields["type"].default, model.model_fields["schema_version"].default
        schema = json.loads(files[f"{type_}.v{version}.json"])
        assert schema["$id"] == f"urn:ledgerline:events:{type_}:v{version}"
        assert schema["title"] == f"{type_} v{version}"
        assert schema.get("x-personal-data", []) == sorted(model.personal_fields)
        assert "type" not in schema["required"] and "schema_version" not in schema["required"]


def test_message_text_is_marked_as_personal_data() -> None:
    schema = json.loads(render_all()["MessageSent.v1.json"])
    assert "text" in schema["x-personal-data"]
    assert schema["$defs"]["Attachment"]["x-personal-data"] == ["name"]


def test_asyncapi_documents_both_brokers_for_every_type() -> None:
    doc = json.loads(render_all()["asyncapi.json"])
    assert doc["asyncapi"].startswith("3.")
    for type_ in registry.types():
        assert doc["channels"][f"nats.{type_}"]["address"] == f"ledgerline.events.{type_}.{{partition}}"
        rabbit = doc["channels"][f"rabbitmq.{type_}"]
        assert rabbit["address"] == f"{type_}.{{partition}}"
        assert rabbit["bindings"]["amqp"]["exchange"]["name"] == "ledgerline.events"
        assert f"receive.nats.{type_}" in doc["operations"]
        message = doc["components"]["messages"][f"{type_}.v1"]
        assert message["contentType"] == "application/cloudevents+json"
        data_ref = message["payload"]["allOf"][1]["properties"]["data"]["$ref"]
        assert (SCHEMA_DIR / data_ref).is_file()


def test_asyncapi_references_resolve_inside_the_document() -> None:
    doc = json.loads(render_all()["asyncapi.json"])
    refs: list[str] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref" and v.startswith("#/"))
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(doc)
    for ref in refs:
        node: object = doc
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]


def test_write_all_removes_leftovers_and_reports_what_it_touched(tmp_path: Path) -> None:
    (tmp_path / "Gone.v1.json").write_text("{}\n")
    touched = write_all(tmp_path)
    assert "Gone.v1.json" in touched and not (tmp_path / "Gone.v1.json").exists()
    assert stale_files(tmp_path) == []
    assert write_all(tmp_path) == []
