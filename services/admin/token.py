"""`ledgerline token USER …`: print a signed development JWT, alone on stdout.

The secret is LEDGERLINE_JWT_SECRET when set; otherwise the one `ledgerline up` keeps in its data
directory (created here if `up` has not run yet, so the two always agree).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jwt

from services.admin.common import admin_settings
from services.embedded.stack import ensure_jwt_secret


def main(args: argparse.Namespace) -> int:
    settings = admin_settings("token")
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    if not settings.jwt_secret:
        data_dir.mkdir(parents=True, exist_ok=True)
    secret = settings.jwt_secret or ensure_jwt_secret(data_dir)
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": args.user,
        "name": args.name or args.user,
        "roles": args.roles or ["user"],
        "iat": now,
        "exp": now + args.ttl,
    }
    if args.segment:
        claims["segment"] = args.segment
    if args.lines:
        claims["lines"] = args.lines
    print(jwt.encode(claims, secret, algorithm="HS256"))
    return 0
