"""`ledgerline migrate`: bring the database schema to the newest migration."""

from __future__ import annotations

import argparse

from services.admin.common import admin_settings
from shared.store.migrate import migrate


def main(_args: argparse.Namespace) -> int:
    settings = admin_settings("migrate")
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.resolved_database_url)
    print("migrated: the database schema is at the newest revision")
    return 0
