"""URLs in logs and errors keep the user, host and port an operator needs, never the password or token."""

from __future__ import annotations

import pytest

from shared.broker.errors import BrokerUnavailable, UnsupportedBrokerUrl
from shared.redact import mask_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:s3cret@127.0.0.1:5672/vhost", "amqp://guest:***@127.0.0.1:5672/vhost"),
        (
            "postgresql+psycopg://app:s3cret@db:5432/ledgerline?sslmode=require",
            "postgresql+psycopg://app:***@db:5432/ledgerline?sslmode=require",
        ),
        ("nats://user:s3cret@nats:4222", "nats://user:***@nats:4222"),
        ("nats://s3cret@nats:4222", "nats://***@nats:4222"),  # a NATS token
        ("amqp://u:s3:cret@[::1]:5672/", "amqp://u:***@[::1]:5672/"),
        ("postgresql://app@db/ledgerline", "postgresql://app@db/ledgerline"),  # a user name alone is no secret
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        (
            "sqlite+aiosqlite:///var/lib/ledgerline/ledgerline.db",
            "sqlite+aiosqlite:///var/lib/ledgerline/ledgerline.db",
        ),
    ],
)
def test_the_password_is_masked_and_the_rest_kept(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_broker_errors_never_carry_the_password() -> None:
    url = "amqp://guest:s3cret@rabbit:5672/"
    for error in (BrokerUnavailable(url, f"cannot reach {url}"), UnsupportedBrokerUrl(url.replace("amqp", "ftp"), ())):
        assert "s3cret" not in str(error) and "s3cret" not in error.url
        assert "guest:***@rabbit:5672" in str(error)
