"""The partition of a stream: which of the P broker partitions carries its events.

All events of one stream go to one partition, so a partitioned consumer (one active consumer per
partition) still sees each stream in order. The hash is CRC-32 of the UTF-8 stream id: it is
stable across processes, machines, Python versions and restarts (unlike `hash()`, which is salted
per process), and cheap enough to compute per event on the relay's hot path.

P is fixed when the broker topology is first created (default 16) and must not change afterwards:
changing it moves streams to other partitions, and events of one stream could then be consumed out
of order while the old partition drains. Growing P needs a planned migration (drain, re-create).
"""

from __future__ import annotations

import zlib

DEFAULT_PARTITIONS = 16


def partition_of(stream_id: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    """The partition, in 0..partitions-1, of the stream `stream_id`."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    return zlib.crc32(stream_id.encode("utf-8")) % partitions
