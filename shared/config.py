"""Configuration from the environment (prefix LEDGERLINE_), validated once at start.

An unknown LEDGERLINE_* variable is an error too: a typo such as LEDGERLINE_DATABSE_URL would
otherwise silently fall back to the default database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigError

ENV_PREFIX = "LEDGERLINE_"


class Settings(BaseSettings):
    """Every setting of every service. Documented in docs/configuration.md (generated from this model)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    data_dir: Path = Field(Path(".ledgerline"), description="Data directory of the embedded stack")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; default SQLite in the data dir",
    )
    broker_url: str | None = Field(None, description="nats://… or amqp://…; default the embedded NATS")
    broker_namespace: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,31}$",
        description="Suffix for the broker's names (streams, subjects, queues), to run two installations or"
        " test runs on one broker server; default none: the contract's names",
    )
    nats_replicas: int = Field(
        1, ge=1, le=5, description="JetStream: copies of each stream (3 on a 3-node NATS cluster); 1 on a single server"
    )
    jwt_secret: str | None = Field(None, description="HS256 shared secret for bearer tokens")
    jwt_public_key_file: Path | None = Field(None, description="PEM public key for RS256/ES256 tokens")
    files_dir: Path | None = Field(None, description="Content-addressed file store; default <data_dir>/files")
    gateway_host: str = Field("127.0.0.1", description="Gateway listen address")
    gateway_port: int = Field(8080, ge=0, le=65535, description="Gateway listen port")
    worker_host: str = Field("127.0.0.1", description="Listen address of a worker's /healthz, /readyz, /metrics")
    worker_port: int = Field(9100, ge=0, le=65535, description="Port of a worker's /healthz, /readyz, /metrics")
    listen_fd: int | None = Field(
        None,
        ge=3,
        description="A listening socket inherited from the parent process (`ledgerline up` sets it): the service"
        " serves on it instead of binding its host and port; default none: it binds them itself",
    )
    shutdown_timeout: float = Field(10.0, gt=0, description="Seconds a service may take to stop on SIGTERM")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level")
    log_format: Literal["json", "console"] = Field("json", description="Log line format")
    partitions: int = Field(16, ge=1, le=1024, description="Broker partitions; fixed when topology is created")
    append_batch_max_events: int = Field(
        256, ge=1, le=10_000, description="Group commit: most events written in one transaction"
    )
    append_batch_max_bytes: int = Field(
        256 * 1024, ge=1024, description="Group commit: most payload bytes written in one transaction"
    )
    max_text_length: int = Field(16_000, ge=1, le=16_000, description="Longest message text, in characters")
    max_file_size: int = Field(100 * 1024 * 1024, ge=1, description="Largest uploaded file, in bytes")
    rate_limit_per_minute: int = Field(1200, ge=0, description="Requests per user per minute; 0 turns it off")
    notify_webhook_url: str | None = Field(
        None, description="Offline notifications: the host system's webhook URL (needs the secret too)"
    )
    notify_webhook_secret: str | None = Field(
        None, description="Offline notifications: HMAC-SHA256 key signing each webhook body"
    )
    notify_batch_seconds: float = Field(
        2.0, gt=0, le=300, description="Offline notifications: seconds a user's notifications are batched"
    )
    sla_policy_file: Path | None = Field(
        None,
        description="Support SLA policy: JSON with the business calendar and targets per priority and line"
        " (docs/support-sla.md); default 24/7 with the built-in targets",
    )
    sla_warning_lead_seconds: int = Field(
        300, ge=0, description="Support: seconds before an SLA breach that the assignee and supervisors are warned"
    )
    support_reopen_window_seconds: int = Field(
        7 * 24 * 3600,
        ge=0,
        description="Support: a requester's message this long after a resolve reopens the ticket; later, a new one",
    )
    support_agent_capacity: int = Field(
        5, ge=1, le=1000, description="Support: open tickets auto-assigned to one agent at most"
    )
    presence_heartbeat_seconds: float = Field(
        10.0, gt=0, le=300, description="Realtime presence: seconds between a gateway's heartbeats for its users"
    )
    presence_ttl_seconds: float = Field(
        30.0,
        gt=0,
        le=900,
        description="Realtime presence: seconds after a gateway's last heartbeat that its users go offline"
        " (keep it at least twice the heartbeat)",
    )
    retention_days_direct: int = Field(
        0, ge=0, description="Retention: days after its last activity a direct chat's texts are erased (0 = kept)"
    )
    retention_days_group: int = Field(0, ge=0, description="Retention: the same for group conversations (0 = kept)")
    retention_days_support: int = Field(0, ge=0, description="Retention: the same for support conversations (0 = kept)")
    audit_signing_key_file: Path | None = Field(
        None, description="Audit: PEM Ed25519 private key that signs `audit checkpoint` files"
    )
    audit_verify_key_file: Path | None = Field(
        None,
        description="Audit: PEM Ed25519 public key for `verify --checkpoint` (default: from the signing key)",
    )

    @field_validator("database_url", "broker_url")
    @classmethod
    def _known_scheme(cls, value: str | None, info: object) -> str | None:
        if value is None:
            return None
        allowed = {
            "database_url": ("sqlite+aiosqlite://", "postgresql+psycopg://", "postgresql://", "sqlite://"),
            "broker_url": ("nats://", "tls://", "amqp://", "amqps://"),
        }[info.field_name]  # type: ignore[attr-defined]  # ValidationInfo carries field_name
        if not value.startswith(allowed):
            raise ValueError(f"must start with one of {', '.join(allowed)}")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL to use: the configured one, with a driver chosen, or SQLite in the data dir."""
        url = self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'ledgerline.db').resolve()}"
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
            url = "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
        return url

    @property
    def resolved_files_dir(self) -> Path:
        return self.files_dir or self.data_dir / "files"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read and validate settings; raise ConfigError naming every bad or unknown variable."""
    env = os.environ if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known)
    problems = [f"{name}: unknown setting" for name in unknown]
    values: dict[str, object] = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in env.items() if k in known}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        # Values are passed explicitly so that a test can validate any mapping, not only os.environ.
        settings: Settings | None = Settings.model_validate(values)
    except ValidationError as e:
        problems += [f"{ENV_PREFIX}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in e.errors()]
        settings = None
    if problems or settings is None:
        raise ConfigError(problems)
    return settings
