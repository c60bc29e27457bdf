"""The committed OpenAPI document (docs/openapi.json) is the app's: regenerate with `make openapi`."""

from __future__ import annotations

import json

from services.gateway.openapi_export import DOCUMENT, render


def test_the_committed_openapi_document_is_current() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == render(), "docs/openapi.json is stale: run `make openapi`"


def test_the_document_lists_every_chat_endpoint_of_the_contract() -> None:
    paths = json.loads(render())["paths"]
    expected = {
        "/v1/conversations": {"get", "post"},
        "/v1/conversations/{conversation_id}": {"get", "patch"},
        "/v1/conversations/{conversation_id}/members": {"post"},
        "/v1/conversations/{conversation_id}/members/{user_id}": {"delete"},
        "/v1/conversations/{conversation_id}/messages": {"get", "post"},
        "/v1/conversations/{conversation_id}/messages/{message_id}": {"patch", "delete"},
        "/v1/conversations/{conversation_id}/delivered": {"post"},
        "/v1/conversations/{conversation_id}/read": {"post"},
        "/v1/unread": {"get"},
        "/v1/objects/{kind}/{object_id}/messages": {"get"},
        "/v1/search": {"get"},
        "/v1/users": {"get"},
        "/v1/files": {"post"},
        "/v1/files/{file_id}": {"get"},
    }
    assert {path: set(paths[path]) for path in expected} == expected
