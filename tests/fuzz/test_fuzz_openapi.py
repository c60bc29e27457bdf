"""schemathesis against a real gateway process on PostgreSQL (and the machine's NATS, in a namespace of
the test's own), with real tokens for each role: generated requests, valid and invalid, for every
operation in docs/openapi.json, once with random path ids and once with ids that exist. No 5xx, every
response conforms to the schema, every error is problem+json; and a run of only-invalid requests
appends nothing (the store's head is compared before and after).

FUZZ_EXAMPLES (tests/fuzz/conftest.py) sets the examples per operation and mode: 3 in `make test`,
100 in `make fuzz`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from chat_support import SECRET, token
from conftest import NATS_URL, create_pg_database, drop_pg_database, require_server, unique_suffix
from helpers.service_procs import ServiceProcess, drop_namespace, gateway_env, service_env, worker_env
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (  # type: ignore[attr-defined]
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from fuzz.conftest import FUZZ_EXAMPLES
from shared.store.migrate import migrate

# Slow by nature (every operation, two modes, two id passes, through real processes): its own timeout.
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(1800)]
ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Each role's token: what the routes check (chat for everyone, tickets for agents and supervisors).
ROLES: dict[str, dict[str, Any]] = {
    "user": {"roles": ["user"]},
    "agent": {"roles": ["agent"], "segment": "b2b", "lines": [1, 2]},
    "supervisor": {"roles": ["supervisor"], "segment": "b2b", "lines": [1, 2, 3]},
    "auditor": {"roles": ["auditor"]},
}


@dataclass
class Gateway:
    url: str
    database_url: str
    ids: dict[str, str] = field(default_factory=dict)
    """Path parameter → an id that exists and the fuzzing user may see."""

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(f'fuzz-{role}', f'Fuzz {role.title()}', **ROLES[role])}"}

    def head(self) -> int:
        async def read() -> int:
            from shared.store.engine import create_engine
            from shared.store.sql import SqlEventStore

            engine = create_engine(self.database_url)
            try:
                return (await SqlEventStore(engine).head()).position
            finally:
                await engine.dispose()

        return asyncio.run(read())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    require_server("NATS", "127.0.0.1", 4222)
    tmp = tmp_path_factory.mktemp("fuzz-gateway")
    name, url = create_pg_database()
    namespace = f"t{unique_suffix()}"
    migrate(url)
    base = service_env(url, NATS_URL, namespace, tmp)
    services = [
        ServiceProcess("gateway", gateway_env(base, SECRET), tmp),
        ServiceProcess("projections", worker_env(base), tmp),
    ]

    async def ready() -> None:
        async with httpx.AsyncClient() as http:
            for service in services:
                await service.start().ready(http)

    try:
        asyncio.run(ready())
        g = Gateway(services[0].url, url)
        seed(g)
        yield g
        for service in services:
            assert service.alive(), f"{service.name} died while fuzzed\n{service.tail()}"
    finally:
        for service in services:
            service.stop()
        asyncio.run(drop_namespace(NATS_URL, namespace))
        drop_pg_database(name)


def seed(g: Gateway) -> None:
    """A conversation with a message and a file the fuzzing user may see: their ids feed the second pass."""
    with httpx.Client(base_url=g.url, headers=g.headers("user"), timeout=30) as http:
        c = http.post("/v1/conversations", json={"kind": "group", "members": ["fuzz-agent"], "title": "Fuzz"})
        assert c.status_code == 201, c.text
        conversation = c.json()["conversation_id"]
        m = http.post(f"/v1/conversations/{conversation}/messages", json={"client_msg_id": "seed", "text": "seed"})
        assert m.status_code == 201, m.text
        f = http.post("/v1/files", files={"file": ("seed.txt", b"seed\n", "text/plain")})
        assert f.status_code == 201, f.text
    g.ids = {
        "conversation_id": conversation,
        "id": conversation,
        "message_id": m.json()["message_id"],
        "file_id": f.json()["file_id"],
        "user_id": "fuzz-agent",
    }


def load_schema(g: Gateway) -> Any:
    return schemathesis.openapi.from_dict(json.loads((ROOT / "docs" / "openapi.json").read_text()))


def fuzz_operation(
    g: Gateway, operation: Any, role: str, mode: GenerationMode, path_ids: bool, failures: list[str]
) -> None:
    names = {p.name for p in operation.path_parameters}
    fixed = {k: v for k, v in g.ids.items() if k in names} if path_ids else None
    if path_ids and not fixed:
        return  # no id in its path: the same as the random pass
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed or None)
    headers = g.headers(role)

    @given(case=strategy)
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(base_url=g.url, headers=headers, timeout=30)
        label = f"{role} {mode.value} {case.method} {case.formatted_path} -> {response.status_code}"
        # 413 (body over the limit) is a rejection too, which negative_data_rejection does not count.
        rejecting = mode is GenerationMode.NEGATIVE and response.status_code != 413
        checks = [*CHECKS, negative_data_rejection] if rejecting else CHECKS
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (Exception, BaseExceptionGroup) as e:  # every failure is collected: one run names them all
            failures.append(f"{label}: {type(e).__name__}: {str(e)[:600]}")
            return
        content_type = (response.headers.get("content-type") or [""])[0]  # header → list of values
        if response.status_code >= 400 and not content_type.startswith(PROBLEM):
            failures.append(f"{label}: error without problem+json: {content_type!r}")

    try:
        run()
    except Unsatisfiable:  # nothing in this operation can be made invalid (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request could be generated"


def operations(g: Gateway) -> list[Any]:
    return [result.ok() for result in load_schema(g).get_all_operations()]


@pytest.mark.parametrize("role", list(ROLES))
def test_generated_requests_get_no_5xx_and_answers_conform_to_the_schema(gateway: Gateway, role: str) -> None:
    failures: list[str] = []
    for operation in operations(gateway):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_ids in (False, True):
                fuzz_operation(gateway, operation, role, mode, path_ids, failures)
    assert not failures, "\n".join(sorted(set(failures))[:40])


def test_invalid_requests_append_nothing(gateway: Gateway) -> None:
    """Only schema-violating requests, on every writing operation, with real ids: the store's head
    does not move (a request the gateway refuses changes nothing)."""
    before = gateway.head()
    failures: list[str] = []
    for operation in operations(gateway):
        if operation.method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
            for path_ids in (False, True):
                fuzz_operation(gateway, operation, "user", GenerationMode.NEGATIVE, path_ids, failures)
    after = gateway.head()
    assert after == before, f"rejected requests appended {after - before} events"
    assert not failures, "\n".join(sorted(set(failures))[:40])


def test_a_message_sent_after_fuzzing_is_still_accepted(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers("user"), timeout=30) as http:
        c = gateway.ids["conversation_id"]
        r = http.post(f"/v1/conversations/{c}/messages", json={"client_msg_id": uuid.uuid4().hex, "text": "after"})
        assert r.status_code == 201, r.text
