"""Each writer plans a batch from the head and stream versions it left behind, and reads them again only
when that may be wrong (shared/store/batch_io.py). Here a second writer (another store on the same
database, as the tickets service is beside the gateway) appends between two batches of the first:
the first's next appends must still get the true versions and positions, conflicts and repeats must
still answer as they would on a fresh store, and the chain must stay whole."""

from __future__ import annotations

import pytest
from helpers.store_support import message, migrated_store, stream_of

from shared.metrics import MetricsRegistry
from shared.store.batch_io import PIPELINED_ROWS
from shared.store.port import ANY, WrongExpectedVersion
from shared.store.sql import SqlEventStore
from shared.store.verify import verify_chain


async def rows(store: SqlEventStore) -> list[tuple[int, str, int]]:
    return [(e.position, e.stream_id, e.stream_version) for e in await store.read_all(0, 1000)]


async def test_a_writer_whose_view_went_stale_appends_at_the_true_head(database_url: str) -> None:
    shared_stream, own = stream_of("shared"), stream_of("own")
    async with migrated_store(database_url) as first, migrated_store(database_url) as second:
        await first.append(shared_stream, [message("shared", 1)], expected_version=0)
        await first.append(own, [message("own", 1)], expected_version=0)  # first now holds head 2

        await second.append(shared_stream, [message("shared", 2)], expected_version=1)  # position 3
        await second.append(stream_of("x"), [message("x", 1)])  # position 4

        # first still believes the shared stream is at version 1 and the head at 2.
        with pytest.raises(WrongExpectedVersion) as caught:
            await first.append(shared_stream, [message("shared", 99)], expected_version=1)
        assert (caught.value.expected, caught.value.actual) == (1, 2)

        moved = await first.append(shared_stream, [message("shared", 3)], expected_version=2)
        assert (moved.first_version, moved.first_position) == (3, 5)

        await second.append(stream_of("x"), [message("x", 2)])  # position 6, behind first's back again
        anywhere = await first.append(own, [message("own", 2)], expected_version=ANY)
        assert (anywhere.first_version, anywhere.first_position) == (2, 7)

        # A repeat of first's earlier append, with the version it expected then: answered as then.
        repeat_of = message("shared", 4)
        original = await first.append(shared_stream, [repeat_of], expected_version=3)
        await second.append(shared_stream, [message("shared", 5)], expected_version=4)
        assert await first.append(shared_stream, [repeat_of], expected_version=3) == original
        assert await first.append(shared_stream, [repeat_of], expected_version=ANY) == original

        stored = await rows(first)
        assert [p for p, _, _ in stored] == list(range(1, 10))
        assert [v for _, s, v in stored if s == shared_stream] == [1, 2, 3, 4, 5]
        assert [v for _, s, v in stored if s == own] == [1, 2]
        result = await verify_chain(first.engine)
        assert result.ok and result.head_position == 9, result.problem


def paths(metrics: MetricsRegistry) -> dict[str, int]:
    return {
        path: int(metrics.registry.get_sample_value("ledgerline_append_batches_total", {"path": path}) or 0)
        for path in ("fast", "checked", "fast_refused")
    }


async def test_a_writer_takes_the_checked_path_while_another_appends_and_the_fast_path_once_alone(
    pg_url: str,
) -> None:
    """While two processes append in turn, planning from one's own view would fail nearly every COPY:
    the writer reads under the lock until a batch finds nobody else appended since its previous one.
    (PostgreSQL only: SQLite's writer reads under its lock always, the reads cost microseconds there.)"""
    metrics = MetricsRegistry()
    async with migrated_store(pg_url, metrics=metrics) as first, migrated_store(pg_url) as second:
        for n in range(1, 21):  # in turn: every batch of `first` follows one of `second`
            await first.append(stream_of("a"), [message("a", n)])
            await second.append(stream_of("b"), [message("b", n)])
        taken = paths(metrics)
        assert taken["fast"] == 0 and taken["checked"] == 20
        assert taken["fast_refused"] <= 1

        for n in range(21, 41):  # alone now
            await first.append(stream_of("a"), [message("a", n)])
        alone = {k: v - taken[k] for k, v in paths(metrics).items()}
        assert alone["checked"] <= 2 and alone["fast"] >= 18 and alone["fast_refused"] == 0

        positions = [e.position for e in await first.read_all(0, 1000)]
        assert positions == list(range(1, 61))


@pytest.mark.parametrize("size", [1, PIPELINED_ROWS, PIPELINED_ROWS + 1, 100])
async def test_a_stale_fast_batch_of_any_size_is_refused_and_lands_at_the_true_head(pg_url: str, size: int) -> None:
    """A batch of up to PIPELINED_ROWS goes in one pipeline with BEGIN, the lock and COMMIT; a larger
    one by COPY. Either way, planned from a head another process has moved, it must fail on the
    position it reused, roll back whole, and be written again at the true head."""
    metrics = MetricsRegistry()
    async with migrated_store(pg_url, metrics=metrics) as first, migrated_store(pg_url) as second:
        await first.append(stream_of("a"), [message("a", 1)], expected_version=0)
        await first.append(stream_of("a"), [message("a", 2)], expected_version=1)  # fast from here on
        await second.append(stream_of("b"), [message("b", 1)])  # position 3, behind first's back
        before = paths(metrics)
        batch = [message("a", n) for n in range(3, 3 + size)]
        result = await first.append(stream_of("a"), batch, expected_version=2)
        assert (result.first_version, result.first_position, result.last_position) == (3, 4, 3 + size)
        taken = {k: v - before[k] for k, v in paths(metrics).items()}
        assert taken == {"fast": 0, "checked": 1, "fast_refused": 1}

        follow = await first.append(stream_of("a"), [message("a", n) for n in range(3 + size, 3 + 2 * size)])
        assert follow.first_position == 4 + size
        stored = await rows(first)
        assert [p for p, _, _ in stored] == list(range(1, 4 + 2 * size))
        assert [v for _, s, v in stored if s == stream_of("a")] == list(range(1, 3 + 2 * size))
        result_chain = await verify_chain(first.engine)
        assert result_chain.ok and result_chain.head_position == 3 + 2 * size, result_chain.problem
