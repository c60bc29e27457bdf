"""Configuration errors through the real command: exit 2, every bad setting named on stderr."""

from __future__ import annotations

import pytest
from helpers.store_support import cli_env, run_cli


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("LEDGERLINE_DATABSE_URL", "sqlite:///x.db", "LEDGERLINE_DATABSE_URL: unknown setting"),
        ("LEDGERLINE_GATEWAY_PORT", "70000", "LEDGERLINE_GATEWAY_PORT"),
        ("LEDGERLINE_DATABASE_URL", "mysql://db/ledgerline", "LEDGERLINE_DATABASE_URL"),
    ],
)
def test_a_bad_setting_stops_migrate_naming_it(variable: str, value: str, said: str) -> None:
    done = run_cli("migrate", env=cli_env(**{variable: value}))
    assert done.returncode == 2
    assert "configuration error" in done.stderr
    assert said in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("command", [["audit", "verify"], ["events", "tail"]])
def test_a_bad_setting_stops_the_admin_commands_too(command: list[str]) -> None:
    done = run_cli(*command, env=cli_env(LEDGERLINE_DATABSE_URL="sqlite:///x.db"))
    assert (done.returncode, done.stdout) == (2, "")
    assert "LEDGERLINE_DATABSE_URL: unknown setting" in done.stderr


def test_every_bad_setting_is_named_at_once() -> None:
    env = cli_env(LEDGERLINE_DATABSE_URL="x", LEDGERLINE_GATEWAY_PORT="port", LEDGERLINE_LOG_LEVEL="loud")
    done = run_cli("migrate", env=env)
    assert done.returncode == 2
    for name in ("LEDGERLINE_DATABSE_URL", "LEDGERLINE_GATEWAY_PORT", "LEDGERLINE_LOG_LEVEL"):
        assert name in done.stderr
