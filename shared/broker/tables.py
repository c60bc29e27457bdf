"""Tables of the worker runtime: live instances and partition leases (migration 0002_worker_runtime)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from shared.store.tables import UtcDateTime, metadata

# One row per running instance of a worker kind, refreshed every lease tick. Instances whose
# `last_seen` is older than the lease TTL are not counted when partitions are shared out.
worker_instances = Table(
    "worker_instances",
    metadata,
    Column("kind", String(100), primary_key=True),
    Column("instance_id", String(200), primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
)

# One row per (worker kind, partition). `owner` may consume the partition until `expires_at`;
# NULL or an expired time means free. `epoch` grows with every acquisition (a fencing token for
# logs and for handlers that want to reject work from a previous owner).
partition_leases = Table(
    "partition_leases",
    metadata,
    Column("kind", String(100), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(200), nullable=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("epoch", BigInteger, nullable=False),
)
