"""Settings: LEDGERLINE_* variables validated at start; every unknown or invalid one is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import load_settings
from shared.errors import ConfigError


def problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    return caught.value.problems


def test_defaults_give_sqlite_in_the_data_dir() -> None:
    settings = load_settings({"LEDGERLINE_DATA_DIR": "/srv/ledgerline", "PATH": "/bin"})
    assert settings.resolved_database_url == "sqlite+aiosqlite:////srv/ledgerline/ledgerline.db"
    assert settings.data_dir == Path("/srv/ledgerline")


@pytest.mark.parametrize(
    ("given", "resolved"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
    ],
)
def test_database_urls_get_the_async_driver(given: str, resolved: str) -> None:
    assert load_settings({"LEDGERLINE_DATABASE_URL": given}).resolved_database_url == resolved


def test_an_unknown_setting_is_named() -> None:
    assert problems({"LEDGERLINE_DATABSE_URL": "postgresql://u@h/db"}) == ["LEDGERLINE_DATABSE_URL: unknown setting"]


def test_variables_without_the_prefix_are_not_ours() -> None:
    load_settings({"DATABASE_URL": "anything", "LEDGERLINEX": "1"})


@pytest.mark.parametrize("port", ["70000", "-1", "eighty"])
def test_an_invalid_port_is_named(port: str) -> None:
    [problem] = problems({"LEDGERLINE_GATEWAY_PORT": port})
    assert problem.startswith("LEDGERLINE_GATEWAY_PORT: ")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LEDGERLINE_DATABASE_URL", "mysql://h/db"), ("LEDGERLINE_BROKER_URL", "kafka://h:9092")],
)
def test_a_bad_url_scheme_is_named_with_the_allowed_ones(variable: str, value: str) -> None:
    [problem] = problems({variable: value})
    assert problem.startswith(f"{variable}: ")
    assert "must start with one of" in problem


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "LEDGERLINE_DATABSE_URL": "x",
            "LEDGERLINE_WORKER_PORT": "99999",
            "LEDGERLINE_DATABASE_URL": "mysql://h/db",
            "LEDGERLINE_LOG_LEVEL": "loud",
        }
    )
    named = {p.split(":")[0] for p in found}
    assert named == {
        "LEDGERLINE_DATABSE_URL",
        "LEDGERLINE_WORKER_PORT",
        "LEDGERLINE_DATABASE_URL",
        "LEDGERLINE_LOG_LEVEL",
    }
