"""CloudEvents 1.0, structured JSON mode, both ways (CONTRACT.md "Events for other systems").

The relay runs `to_cloudevent_bytes` once per published event and every consumer runs
`from_cloudevent_bytes` once per delivered one, so this path uses plain dicts and orjson only: no
pydantic, no payload validation (the payload is validated when the event is written, and decoded on
demand through `RecordedEvent.event`).

Mapping (CloudEvents attribute <- RecordedEvent field):

    specversion      "1.0"
    id               event_id
    source           "ledgerline/<service>"
    type             "ledgerline.<Type>.v<schema_version>"
    subject          stream_id
    time             occurred_at (RFC 3339, UTC, microseconds, "Z")
    datacontenttype  "application/json"
    data             payload
    position         position (integer)
    streamversion    stream_version (integer)
    correlationid    correlation_id (omitted when None)
    causationid      causation_id (omitted when None)
    actor            actor
    recordedat       recorded_at (RFC 3339 like `time`)
    partition        partition_of(stream_id, partitions) (integer; not read back: it is derived)
    prevhash, hash   the hash chain links
    metadata         metadata as a JSON string (omitted when empty)

Extension names are lowercase alphanumeric, as the CloudEvents spec requires. Integers are JSON
numbers; the decoder also accepts them as decimal strings, because the CloudEvents Integer type is
32-bit and some SDKs stringify larger values.
"""

from __future__ import annotations

import functools
import re
import uuid
from datetime import UTC, datetime
from typing import Any, NoReturn

import orjson

from shared.errors import LedgerlineError
from shared.events.envelope import RecordedEvent
from shared.events.partition import DEFAULT_PARTITIONS, partition_of

CONTENT_TYPE = "application/cloudevents+json"
DATA_CONTENT_TYPE = "application/json"
SPEC_VERSION = "1.0"
TYPE_PREFIX = "ledgerline."
SOURCE_PREFIX = "ledgerline/"

_TYPE_RE = re.compile(r"^ledgerline\.([A-Za-z][A-Za-z0-9]*)\.v([1-9][0-9]{0,8})$")


class InvalidCloudEvent(LedgerlineError):
    """A CloudEvent that cannot be read as a Ledgerline event; `problem` names what is wrong."""

    def __init__(self, problem: str, event_id: str | None = None) -> None:
        self.problem = problem
        self.event_id = event_id
        where = f" (id {event_id})" if event_id else ""
        super().__init__(f"invalid CloudEvent{where}: {problem}")


def cloudevent_type(type_: str, schema_version: int) -> str:
    """`ledgerline.<Type>.v<schema_version>`."""
    return f"{TYPE_PREFIX}{type_}.v{schema_version}"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a "Z": one fixed width, so times sort as strings."""
    if moment.tzinfo is UTC:  # the usual case (the store reads UTC back): no conversion
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: Ledgerline times are UTC-aware")
    # isoformat is twice as fast as strftime; in UTC it always ends in "+00:00".
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def to_cloudevent(e: RecordedEvent, source: str, partitions: int = DEFAULT_PARTITIONS) -> dict[str, Any]:
    """The structured-mode CloudEvent of `e`. `source` is the service name, or already `ledgerline/…`."""
    ce: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": str(e.event_id),
        "source": source if source.startswith(SOURCE_PREFIX) else SOURCE_PREFIX + source,
        "type": cloudevent_type(e.type, e.schema_version),
        "subject": e.stream_id,
        "time": format_time(e.occurred_at),
        "datacontenttype": DATA_CONTENT_TYPE,
        "data": e.payload,
        "position": e.position,
        "streamversion": e.stream_version,
        "actor": e.actor,
        "recordedat": format_time(e.recorded_at),
        "partition": partition_of(e.stream_id, partitions),
        "prevhash": e.prev_hash,
        "hash": e.hash,
    }
    if e.correlation_id is not None:
        ce["correlationid"] = str(e.correlation_id)
    if e.causation_id is not None:
        ce["causationid"] = str(e.causation_id)
    if e.metadata:
        ce["metadata"] = orjson.dumps(e.metadata).decode("utf-8")
    return ce


def to_cloudevent_bytes(
    e: RecordedEvent, source: str, partitions: int = DEFAULT_PARTITIONS, *, partition: int | None = None
) -> bytes:
    """`to_cloudevent` as UTF-8 JSON, ready to publish with content type `CONTENT_TYPE`.

    The same bytes as `orjson.dumps(to_cloudevent(...))`, built for the relay's hot path: orjson
    writes the UUIDs itself, the type and source strings are cached, and a caller that already
    knows the event's `partition` (the adapters, for the subject) passes it."""
    ce: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": e.event_id,
        "source": _source(source),
        "type": _cloudevent_type(e.type, e.schema_version),
        "subject": e.stream_id,
        "time": format_time(e.occurred_at),
        "datacontenttype": DATA_CONTENT_TYPE,
        "data": e.payload,
        "position": e.position,
        "streamversion": e.stream_version,
        "actor": e.actor,
        "recordedat": format_time(e.recorded_at),
        "partition": partition_of(e.stream_id, partitions) if partition is None else partition,
        "prevhash": e.prev_hash,
        "hash": e.hash,
    }
    if e.correlation_id is not None:
        ce["correlationid"] = e.correlation_id
    if e.causation_id is not None:
        ce["causationid"] = e.causation_id
    if e.metadata:
        ce["metadata"] = orjson.dumps(e.metadata).decode("utf-8")
    return orjson.dumps(ce)


@functools.lru_cache(maxsize=64)
def _source(source: str) -> str:
    return source if source.startswith(SOURCE_PREFIX) else SOURCE_PREFIX + source


@functools.lru_cache(maxsize=1024)
def _cloudevent_type(type_: str, schema_version: int) -> str:
    return cloudevent_type(type_, schema_version)


def from_cloudevent_bytes(b: bytes) -> RecordedEvent:
    """The RecordedEvent in a structured-mode CloudEvent's JSON bytes."""
    try:
        d = orjson.loads(b)
    except orjson.JSONDecodeError as err:
        raise InvalidCloudEvent(f"not JSON: {err}") from err
    return from_cloudevent(d)


def from_cloudevent(d: dict[str, Any]) -> RecordedEvent:
    """The RecordedEvent that `to_cloudevent` turned into `d`; InvalidCloudEvent names any problem."""
    if type(d) is dict:
        fast = _from_well_formed(d)
        if fast is not None:
            return fast
    return _from_cloudevent_checked(d)


def _from_well_formed(d: dict[str, Any]) -> RecordedEvent | None:
    """The consumers' hot path: what `to_cloudevent_bytes` writes, read with the fewest checks that
    still accept nothing the checked reader would refuse; None sends anything else (integers as
    strings, errors to report) to the checked reader, which names the problem."""
    get = d.get
    parsed = _parse_type(get("type"))
    source = get("source")
    stream_id = get("subject")
    position = get("position")
    stream_version = get("streamversion")
    actor = get("actor")
    prev_hash = get("prevhash")
    hash_ = get("hash")
    data = get("data")
    if (
        parsed is None
        or get("specversion") != SPEC_VERSION
        or type(source) is not str
        or not source.startswith(SOURCE_PREFIX)
        or type(stream_id) is not str
        or not stream_id
        or type(position) is not int
        or type(stream_version) is not int
        or type(actor) is not str
        or not actor
        or type(prev_hash) is not str
        or type(hash_) is not str
        or not hash_
        or type(data) is not dict
        or get("datacontenttype", DATA_CONTENT_TYPE) != DATA_CONTENT_TYPE
        or "metadata" in d
    ):
        return None
    correlation = get("correlationid")
    causation = get("causationid")
    try:
        event_id = _uuid(get("id"))
        occurred_at = _utc_time(get("time"))
        recorded_at = _utc_time(get("recordedat"))
        correlation_id = None if correlation is None else _uuid(correlation)
        causation_id = None if causation is None else _uuid(causation)
    except (ValueError, TypeError):
        return None
    if occurred_at is None or recorded_at is None:
        return None
    return RecordedEvent(
        position, stream_id, stream_version, event_id, parsed[0], parsed[1], occurred_at, recorded_at, actor,
        correlation_id, causation_id, data, {}, prev_hash, hash_,
    )  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _parse_type_cached(text: str) -> tuple[str, int] | None:
    match = _TYPE_RE.match(text)
    return None if match is None else (match.group(1), int(match.group(2)))


def _parse_type(text: object) -> tuple[str, int] | None:
    return _parse_type_cached(text) if type(text) is str else None


def _uuid(text: object) -> uuid.UUID:
    if type(text) is not str or not text:
        raise ValueError("not a UUID string")
    return uuid.UUID(text)


def _utc_time(text: object) -> datetime | None:
    """A time as the checked reader reads it; None (checked reader decides) for anything unusual."""
    if type(text) is not str or not text:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is UTC:
        return moment
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def _from_cloudevent_checked(d: dict[str, Any]) -> RecordedEvent:
    if not isinstance(d, dict):
        raise InvalidCloudEvent(f"expected a JSON object, got {type(d).__name__}")
    raw_id = d.get("id")
    reader = _Reader(d, raw_id if isinstance(raw_id, str) else None)
    if d.get("specversion") != SPEC_VERSION:
        reader.fail(f"specversion must be {SPEC_VERSION!r}, got {d.get('specversion')!r}")
    type_, schema_version = reader.type()
    return RecordedEvent(
        position=reader.integer("position"),
        stream_id=reader.string("subject"),
        stream_version=reader.integer("streamversion"),
        event_id=reader.uuid_("id"),
        type=type_,
        schema_version=schema_version,
        occurred_at=reader.time("time"),
        recorded_at=reader.time("recordedat"),
        actor=reader.string("actor"),
        correlation_id=reader.optional_uuid("correlationid"),
        causation_id=reader.optional_uuid("causationid"),
        payload=reader.data(),
        metadata=reader.metadata(),
        prev_hash=reader.string("prevhash", allow_empty=True),
        hash=reader.string("hash"),
    )


class _Reader:
    """Reads and checks one attribute at a time, naming the attribute in every error."""

    __slots__ = ("d", "event_id")

    def __init__(self, d: dict[str, Any], event_id: str | None) -> None:
        self.d = d
        self.event_id = event_id

    def fail(self, problem: str) -> NoReturn:
        raise InvalidCloudEvent(problem, self.event_id)

    def string(self, name: str, *, allow_empty: bool = False) -> str:
        value = self.d.get(name)
        if value is None:
            self.fail(f"missing {name!r}")
        if not isinstance(value, str):
            self.fail(f"{name!r} must be a string, got {type(value).__name__}")
        if not value and not allow_empty:
            self.fail(f"{name!r} is empty")
        return value

    def integer(self, name: str) -> int:
        value = self.d.get(name)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{name!r} must be an integer, got {value!r}")
        return value

    def uuid_(self, name: str) -> uuid.UUID:
        text = self.string(name)
        try:
            return uuid.UUID(text)
        except ValueError:
            self.fail(f"{name!r} is not a UUID: {text!r}")

    def optional_uuid(self, name: str) -> uuid.UUID | None:
        return None if self.d.get(name) is None else self.uuid_(name)

    def time(self, name: str) -> datetime:
        text = self.string(name)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{name!r} is not an RFC 3339 time: {text!r}")
        if moment.tzinfo is None:
            self.fail(f"{name!r} has no time zone: {text!r}")
        return moment.astimezone(UTC)

    def type(self) -> tuple[str, int]:
        text = self.string("type")
        match = _TYPE_RE.match(text)
        if match is None:
            self.fail(f"'type' must look like 'ledgerline.<Type>.v<N>', got {text!r}")
        self.string("source")
        if not self.d["source"].startswith(SOURCE_PREFIX):
            self.fail(f"'source' must start with {SOURCE_PREFIX!r}, got {self.d['source']!r}")
        return match.group(1), int(match.group(2))

    def data(self) -> dict[str, Any]:
        content_type = self.d.get("datacontenttype", DATA_CONTENT_TYPE)
        if content_type != DATA_CONTENT_TYPE:
            self.fail(f"'datacontenttype' must be {DATA_CONTENT_TYPE!r}, got {content_type!r}")
        value = self.d.get("data")
        if not isinstance(value, dict):
            self.fail(f"'data' must be a JSON object, got {type(value).__name__}")
        return value

    def metadata(self) -> dict[str, Any]:
        text = self.d.get("metadata")
        if text is None:
            return {}
        if not isinstance(text, str):
            self.fail(f"'metadata' must be a JSON string, got {type(text).__name__}")
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.fail("'metadata' is not valid JSON")
        if not isinstance(value, dict):
            self.fail("'metadata' must encode a JSON object")
        return value
