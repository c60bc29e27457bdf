"""Writes the JSON Schema of every event, and the AsyncAPI document, into shared/events/schemas/.

    python -m shared.events.schema_export      (or: make schemas)

Other systems code against these files, so they are committed, and a unit test fails when they no
longer match the models. The output is deterministic (sorted keys, two-space indent, trailing
newline) so that a regeneration without a model change is an empty diff.

Each schema describes the stored payload, which is also the CloudEvents `data`: the serialization
form of the model, without `type` and `schema_version` (they travel in the envelope; the schema
still names them as constants, and as `x-ledgerline-type` / `x-schema-version`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from shared.events.asyncapi import ASYNCAPI_FILE, asyncapi_document, schema_file
from shared.events.base import ENVELOPE_FIELDS, Event
from shared.events.cloudevents import cloudevent_type
from shared.events.registry import EventRegistry, registry

SCHEMA_DIR = Path(__file__).parent / "schemas"
# A URN rather than an https URL: the schemas are shipped in the package, not served anywhere.
SCHEMA_ID_PREFIX = "urn:ledgerline:events:"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def event_schema(model: type[Event]) -> dict[str, Any]:
    """The JSON Schema of `model`'s payload, with `$id`, title and the personal-data fields."""
    type_ = model.model_fields["type"].default
    version = model.model_fields["schema_version"].default
    schema = model.model_json_schema(mode="serialization")
    schema["required"] = [name for name in schema.get("required", []) if name not in ENVELOPE_FIELDS]
    schema.update(
        {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"{SCHEMA_ID_PREFIX}{type_}:v{version}",
            "title": f"{type_} v{version}",
            "x-ledgerline-type": type_,
            "x-schema-version": version,
            "x-cloudevents-type": cloudevent_type(type_, version),
        }
    )
    return schema


def dump(document: dict[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def render_all(source: EventRegistry = registry) -> dict[str, bytes]:
    """File name -> content of every file that belongs in the schema directory."""
    models = sorted(source, key=lambda m: (m.model_fields["type"].default, m.model_fields["schema_version"].default))
    files = {
        schema_file(m.model_fields["type"].default, m.model_fields["schema_version"].default): dump(event_schema(m))
        for m in models
    }
    files[ASYNCAPI_FILE] = dump(asyncapi_document(models))
    return files


def stale_files(directory: Path = SCHEMA_DIR, source: EventRegistry = registry) -> list[str]:
    """Names of files that are missing, different or left over in `directory`."""
    expected = render_all(source)
    present = {p.name for p in directory.glob("*.json")} if directory.is_dir() else set()
    changed = [name for name, content in expected.items() if not _same(directory / name, content)]
    return sorted(set(changed) | (present - set(expected)))


def write_all(directory: Path = SCHEMA_DIR, source: EventRegistry = registry) -> list[str]:
    """Brings `directory` up to date; the names of the files written or removed."""
    expected = render_all(source)
    directory.mkdir(parents=True, exist_ok=True)
    touched = stale_files(directory, source)
    for name in touched:
        path = directory / name
        if name in expected:
            path.write_bytes(expected[name])
        else:
            path.unlink()
    return touched


def _same(path: Path, content: bytes) -> bool:
    return path.is_file() and path.read_bytes() == content


def main() -> int:
    touched = write_all()
    for name in touched:
        print(f"updated {SCHEMA_DIR / name}")
    print(f"{len(render_all())} schema files in {SCHEMA_DIR}, {len(touched)} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
