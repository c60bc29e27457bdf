"""No secret and no message text in the logs: a chat flow against real processes (gateway, delivery,
projections, tickets; JSON logs captured to files, at debug level, the most talkative), with
distinctive message texts, a distinctive JWT secret, passwords in the database and broker URLs
(PostgreSQL here trusts 127.0.0.1 and NATS has no accounts, so both accept any password), bearer
tokens, and a few requests that fail (bad tokens, a text too long). Then every captured line is
searched for each of them."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
from chat_support import token
from conftest import (
    NATS_URL,
    PG_HOST,
    PG_PORT,
    PG_USER,
    create_pg_database,
    drop_pg_database,
    require_server,
    unique_suffix,
)
from helpers.service_procs import ServiceProcess, drop_namespace, gateway_env, service_env, worker_env

from services.embedded.ports import free_port

pytestmark = pytest.mark.slow

FLOW_TIMEOUT = 30.0
WORKERS = ("delivery", "projections", "tickets")


async def until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_the_logs_of_a_chat_flow_hold_no_token_secret_password_or_message_text(tmp_path: Path) -> None:
    require_server("NATS", "127.0.0.1", 4222)
    tag = uuid.uuid4().hex[:12]
    secret = f"jwt-secret-{tag}-0123456789abcdef"
    db_password = f"dbpw{tag}"
    broker_password = f"natspw{tag}"
    texts = [f"quokka saffron {tag} number {i}" for i in range(3)]
    edited = f"edited marmalade {tag}"
    reply = f"reply tangerine {tag}"
    too_long = f"overlong {tag} " + "x" * 300
    name, url = create_pg_database()
    namespace = f"ops-{unique_suffix()}"
    database_url = url.replace(f"{PG_USER}@{PG_HOST}:{PG_PORT}", f"{PG_USER}:{db_password}@{PG_HOST}:{PG_PORT}")
    host_port = NATS_URL.removeprefix("nats://")
    broker_url = f"nats://ledgerline:{broker_password}@{host_port}"
    base = service_env(database_url, broker_url, namespace, tmp_path / "data", log_level="debug", max_text_length=200)
    gateway = ServiceProcess("gateway", gateway_env(base, secret), tmp_path)
    workers = [ServiceProcess(kind, worker_env(base), tmp_path) for kind in WORKERS]
    alice, bob = token("alice", secret=secret), token("bob", secret=secret)
    wrong_key = token("alice", secret=f"other-secret-{tag}-0123456789abcdef")
    garbage = f"garbage.{tag}.token"
    try:
        gateway.start()  # first: it migrates the new database, the workers then find it ready
        async with httpx.AsyncClient(timeout=30) as http:
            await gateway.ready(http)
            for w in workers:
                w.start()
            for w in workers:
                await w.ready(http)
            api = gateway.url + "/v1"
            a = {"Authorization": f"Bearer {alice}"}
            b = {"Authorization": f"Bearer {bob}"}
            r = await http.post(
                f"{api}/conversations", headers=a, json={"kind": "group", "members": ["bob"], "title": "t"}
            )
            assert r.status_code == 201, r.text
            cid = r.json()["conversation_id"]
            sent = []
            for text in texts:
                r = await http.post(
                    f"{api}/conversations/{cid}/messages",
                    headers=a,
                    json={"client_msg_id": uuid.uuid4().hex, "text": text},
                )
                assert r.status_code == 201, r.text
                sent.append(r.json())
            r = await http.post(
                f"{api}/conversations/{cid}/messages",
                headers=b,
                json={"client_msg_id": uuid.uuid4().hex, "text": reply, "reply_to": sent[0]["message_id"]},
            )
            assert r.status_code == 201, r.text
            r = await http.patch(
                f"{api}/conversations/{cid}/messages/{sent[1]['message_id']}", headers=a, json={"text": edited}
            )
            assert r.status_code == 200, r.text
            r = await http.delete(f"{api}/conversations/{cid}/messages/{sent[2]['message_id']}", headers=a)
            assert r.status_code == 204, r.text
            r = await http.post(f"{api}/conversations/{cid}/read", headers=b, json={"up_to_seq": 2})
            assert r.status_code == 204, r.text

            async def timeline_complete() -> bool:
                r = await http.get(f"{api}/conversations/{cid}/messages", headers=b)
                return r.status_code == 200 and any(m.get("text") == edited for m in r.json())

            await until(timeline_complete, FLOW_TIMEOUT, "the projections worker to show the edited message")

            async def found() -> bool:
                r = await http.get(f"{api}/search", headers=b, params={"q": "tangerine"})
                return r.status_code == 200 and len(r.json()) == 1

            await until(found, FLOW_TIMEOUT, "search to find the reply")
            # Requests that fail: each is answered with a problem, none may echo what it carried.
            for bad in (wrong_key, garbage):
                r = await http.get(f"{api}/conversations/{cid}", headers={"Authorization": f"Bearer {bad}"})
                assert r.status_code == 401, r.text
            r = await http.post(
                f"{api}/conversations/{cid}/messages",
                headers=a,
                json={"client_msg_id": uuid.uuid4().hex, "text": too_long},
            )
            assert r.status_code in (413, 422), r.text
            assert too_long not in r.text
    finally:
        for service in (*workers, gateway):
            service.stop()
        drop_pg_database(name)
        await drop_namespace(NATS_URL, namespace)

    logs = {s.name: s.log.read_text(errors="replace") for s in (gateway, *workers)}
    # The logs did capture the run (a test reading empty files would pass for nothing).
    for service_name, text in logs.items():
        assert '"service_started"' in text and '"service_stopped"' in text, f"{service_name}: {text[-2000:]}"
    secrets = {
        "JWT secret": secret,
        "database password": db_password,
        "broker password": broker_password,
        "alice's token": alice,
        "bob's token": bob,
        "a token signed with another key": wrong_key,
        "a malformed token": garbage,
        "edited text": edited,
        "reply text": reply,
        "text too long": too_long[:40],
        **{f"message {i}": text for i, text in enumerate(texts)},
    }
    leaks = [
        f"{what} in the {service_name} log: {line[:300]}"
        for service_name, text in logs.items()
        for line in text.splitlines()
        for what, value in secrets.items()
        if value in line
    ]
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize("command", ["gateway", "projections"])
@pytest.mark.parametrize("failing", ["broker refuses the password", "database unreachable"])
def test_a_service_that_cannot_start_names_its_server_but_not_the_password(
    rabbit_url: str, tmp_path: Path, command: str, failing: str
) -> None:
    """An operator's typo in a password, or a database that is down: the service stops with an error
    that names the server (user, host, port), with the password masked."""
    tag = uuid.uuid4().hex[:12]
    password = f"pw{tag}"
    env = worker_env({}) | gateway_env({}, f"jwt-secret-{tag}-0123456789abcdef")
    env |= {"LEDGERLINE_DATA_DIR": str(tmp_path / "data"), "LEDGERLINE_LOG_FORMAT": "json"}
    if failing == "database unreachable":
        port = free_port()  # nothing listens there
        env["LEDGERLINE_DATABASE_URL"] = f"postgresql://{PG_USER}:{password}@127.0.0.1:{port}/ledgerline"
        expected = f'connection to server at "127.0.0.1", port {port} failed'
    else:
        user_host = rabbit_url.removeprefix("amqp://").partition("@")
        user = user_host[0].partition(":")[0]
        env["LEDGERLINE_BROKER_URL"] = f"amqp://{user}:{password}@{user_host[2]}"
        expected = f"amqp://{user}:***@{user_host[2]}"
    service = ServiceProcess(command, env, tmp_path).start()
    try:
        code = service.wait(60)
    finally:
        service.stop()
    log = service.log.read_text(errors="replace")
    assert code != 0, log[-3000:]
    assert expected in log, log[-3000:]
    assert password not in log, [line[:300] for line in log.splitlines() if password in line]
