"""Values fit for a log line or an error message: a URL's password never leaves the process.

Broker and database URLs carry passwords (LEDGERLINE_BROKER_URL=amqp://user:password@host/…), and
errors that name them end up in logs and tracebacks; an operator needs the host and user, not the
password.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"
TOKEN_SCHEMES = ("nats", "tls")


def mask_url(url: str) -> str:
    """`url` with its password (if any) replaced by ***; anything that is not a URL comes back as is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _mask_by_hand(url)
    if parts.password is None:
        # nats://TOKEN@host: a NATS token sits where a user name would be, and is a secret.
        if parts.username and parts.scheme.lower() in TOKEN_SCHEMES:
            return urlunsplit(parts._replace(netloc=f"{MASK}@{parts.netloc.rpartition('@')[2]}"))
        return url
    user, _, _ = parts.netloc.rpartition("@")[0].partition(":")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def _mask_by_hand(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:{MASK}@{host}"
