"""Delivered on fetch: which watermark a fetched page gives its reader."""

from __future__ import annotations

from datetime import UTC, datetime

from services.gateway.ws.fetched import fetched_up_to
from services.projections.views import MessageView


def _message(seq: int, sender: str) -> MessageView:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return MessageView("c", f"m{seq}", seq, sender, "t", [], [], None, at, None, False)


def test_the_watermark_of_a_page_is_its_highest_message_from_someone_else() -> None:
    page = [_message(1, "kai"), _message(2, "lea"), _message(3, "kai")]
    assert fetched_up_to(page, "lea") == 3
    assert fetched_up_to(page, "kai") == 2
    assert fetched_up_to([_message(4, "lea")], "lea") == 0
    assert fetched_up_to([], "lea") == 0
