"""The RabbitMQ ephemeral multiplexer matches routing keys in-process as the server's topic exchange
does (`*` one word, `#` zero or more), since it dispatches what one shared queue receives."""

from __future__ import annotations

import pytest

from shared.broker.rabbit.ephemeral import is_wildcard, topic_regex
from shared.broker.rabbit.names import binding_pattern


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("ledgerline.rt.presence.*", "ledgerline.rt.presence.alice", True),
        ("ledgerline.rt.presence.*", "ledgerline.rt.presence", False),
        ("ledgerline.rt.presence.*", "ledgerline.rt.presence.alice.x", False),
        ("ledgerline.rt.presence.*", "ledgerline.rt.user.alice", False),
        ("ledgerline.*.user.*", "ledgerline.rt.user.~616c", True),
        ("ledgerline.#", "ledgerline", True),
        ("ledgerline.#", "ledgerline.rt.user.alice", True),
        ("ledgerline.#", "ledgerlinex.rt", False),
        ("#.alice", "alice", True),
        ("#.alice", "ledgerline.rt.user.alice", True),
        ("#.alice", "ledgerline.rt.user.alicex", False),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.x.y.c", False),
        ("#", "", True),
        ("#", "anything.at.all", True),
        ("a.b+c.*", "a.b+c.d", True),  # regex characters in a word are literal
        ("a.b+c.*", "a.bbc.d", False),
    ],
)
def test_topic_patterns_match_as_amqp_does(pattern: str, key: str, matches: bool) -> None:
    assert is_wildcard(pattern)
    assert bool(topic_regex(pattern).fullmatch("." + key)) is matches


def test_nats_subjects_become_exact_keys_or_wildcards() -> None:
    assert not is_wildcard(binding_pattern("ledgerline.rt.user.alice"))
    assert is_wildcard(binding_pattern("ledgerline.rt.presence.*"))
    assert binding_pattern("ledgerline.rt.>") == "ledgerline.rt.#"
