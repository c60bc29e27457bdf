"""The registry from (type, schema_version) to model, with upcasters for old versions.

Stored events are never rewritten. When an event's shape changes, a new model version is
registered and an upcaster turns the old payload into the new one on read:
`registry.add_upcaster("MessageSent", 1, upcast_message_sent_v1_v2)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from shared.errors import LedgerlineError
from shared.events.base import Event

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]
E = TypeVar("E", bound=Event)


class UnknownEventType(LedgerlineError):
    def __init__(self, type_: str, schema_version: int) -> None:
        self.type = type_
        self.schema_version = schema_version
        super().__init__(f"unknown event type {type_!r} version {schema_version}")


class EventRegistry:
    """`autoload` names a module that registers the models (the global registry's is the catalogue);
    it is imported on the first lookup, so that readers need not remember to import it, and so that
    `shared.events` itself stays light to import."""

    def __init__(self, autoload: str | None = None) -> None:
        self._models: dict[tuple[str, int], type[Event]] = {}
        self._latest: dict[str, int] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        # (type, stored version) -> payload to latest model. Every read of every event comes here:
        # one lookup and pydantic's validator, not the upcast walk and model_validate's own checks.
        self._decoders: dict[tuple[str, int], Callable[[Payload], Event]] = {}
        self._autoload = autoload

    def _load(self) -> None:
        if self._autoload is not None:
            module, self._autoload = self._autoload, None  # first, so that a re-entry stops here
            importlib.import_module(module)

    def register(self, model: type[E]) -> type[E]:
        """Register a model (usable as a class decorator). Its `type` and `schema_version` are literals."""
        type_ = model.model_fields["type"].default
        version = model.model_fields["schema_version"].default
        if not isinstance(type_, str) or not isinstance(version, int):
            raise TypeError(f"{model.__name__} needs defaults for its type and schema_version literals")
        self._models[(type_, version)] = model
        self._latest[type_] = max(version, self._latest.get(type_, 0))
        self._decoders.clear()
        return model

    def add_upcaster(self, type_: str, from_version: int, upcaster: Upcaster) -> None:
        """`upcaster` turns a payload of `from_version` into one of `from_version + 1`."""
        self._upcasters[(type_, from_version)] = upcaster
        self._decoders.clear()

    def model_for(self, type_: str, schema_version: int) -> type[Event]:
        self._load()
        try:
            return self._models[(type_, schema_version)]
        except KeyError:
            raise UnknownEventType(type_, schema_version) from None

    def latest_version(self, type_: str) -> int:
        self._load()
        if type_ not in self._latest:
            raise UnknownEventType(type_, 0)
        return self._latest[type_]

    def decode(self, type_: str, schema_version: int, payload: Payload) -> Event:
        """The payload as the latest model of its type, upcast step by step from the stored version."""
        try:
            decoder = self._decoders[(type_, schema_version)]
        except KeyError:
            decoder = self._decoders[(type_, schema_version)] = self._decoder(type_, schema_version)
        return decoder(payload)

    def _decoder(self, type_: str, schema_version: int) -> Callable[[Payload], Event]:
        self._load()
        latest = self._latest.get(type_)
        if latest is None:
            raise UnknownEventType(type_, schema_version)
        steps: list[Upcaster] = []
        version = schema_version
        while version < latest:
            upcaster = self._upcasters.get((type_, version))
            if upcaster is None:
                break  # an old version with its own model and no upcaster: decode it as it is
            steps.append(upcaster)
            version += 1
        model = self.model_for(type_, version)
        if not model.__pydantic_complete__:
            model.model_rebuild()
        validate: Callable[[Payload], Event] = model.__pydantic_validator__.validate_python
        if not steps:
            return validate

        def upcast_and_validate(payload: Payload) -> Event:
            for step in steps:
                payload = step(payload)
            return validate(payload)

        return upcast_and_validate

    def __iter__(self) -> Iterator[type[Event]]:
        self._load()
        return iter(self._models.values())

    def types(self) -> list[str]:
        self._load()
        return sorted(self._latest)


registry = EventRegistry(autoload="shared.events.catalogue")
