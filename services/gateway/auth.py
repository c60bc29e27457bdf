"""Who is calling: bearer JWTs from the host system, verified with PyJWT, turned into a Principal.

The accepted algorithm list comes from the configuration, never from the token: HS256 when only a
shared secret is configured, RS256 or ES256 (from the key's type) when a public key file is. So a
token saying `alg: none`, or one signed HS256 with the public key's text as the secret (algorithm
confusion), fails the check before any signature is looked at. When both are configured the key
file wins, as `ledgerline up` decides too (services/embedded/stack.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_args

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Header, Request

from services.gateway.commands.cache import LruCache
from services.gateway.errors import Unauthorized
from shared.config import Settings
from shared.errors import ConfigError
from shared.events.fields import ID_MAX, NAME_MAX, Role, Segment

KNOWN_ROLES = frozenset(get_args(Role))
KNOWN_SEGMENTS = frozenset(get_args(Segment))
KNOWN_LINES = (1, 2, 3)
# Clock skew between the host that issues tokens and us; small, so an expired token stays expired.
LEEWAY_SECONDS = 5
# A real token is well under 2 KB; a huge header is someone probing the parser.
TOKEN_MAX_CHARS = 8_192


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, from the token's claims. `roles` holds known roles only; `lines` is sorted."""

    user_id: str
    name: str
    roles: frozenset[str]
    segment: str | None
    lines: tuple[int, ...]


# Tokens this verifier has verified, with their Principal and expiry. A client sends the same token
# with every request, and checking its signature again (PyJWT) was ~11% of the gateway's time per
# message (py-spy under load, 2026-12-02). A hit is the very text that was verified, so it proves as
# much; only the expiry can change its answer, and it is checked on every use. Per verifier: a token
# verified with one key says nothing about another.
VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class TokenVerifier:
    """What a token must be signed with: one key (secret text or public key) and its algorithms."""

    key: Any  # str for HS256, an RSA/EC public key object for RS256/ES256
    algorithms: tuple[str, ...]
    verified: LruCache[str, tuple[Principal, float]] = field(
        default_factory=lambda: LruCache(VERIFIED_CACHE_SIZE), compare=False, repr=False
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """Raise ConfigError at start when no key is configured or the key file is unusable."""
        if settings.jwt_public_key_file is not None:
            return cls.from_public_key_file(settings.jwt_public_key_file)
        if settings.jwt_secret:
            return cls(settings.jwt_secret, ("HS256",))
        raise ConfigError(["LEDGERLINE_JWT_SECRET or LEDGERLINE_JWT_PUBLIC_KEY_FILE: one must be set"])

    @classmethod
    def from_public_key_file(cls, path: Path) -> TokenVerifier:
        setting = "LEDGERLINE_JWT_PUBLIC_KEY_FILE"
        try:
            key = load_pem_public_key(path.read_bytes())
        except OSError as e:
            raise ConfigError([f"{setting}: cannot read {path}: {e.strerror or e}"]) from e
        except ValueError as e:
            raise ConfigError([f"{setting}: {path} is not a PEM public key"]) from e
        if isinstance(key, rsa.RSAPublicKey):
            return cls(key, ("RS256",))
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return cls(key, ("ES256",))
        raise ConfigError([f"{setting}: {path} must hold an RSA or a P-256 EC public key"])


def verify_token(token: str, verifier: TokenVerifier) -> Principal:
    """The Principal of a valid token; Unauthorized(reason) for anything else."""
    if not token or len(token) > TOKEN_MAX_CHARS:
        raise Unauthorized("malformed token")
    known = verifier.verified.get(token)
    if known is not None:
        principal, expires = known
        if time.time() < expires + LEEWAY_SECONDS:  # PyJWT's rule: expired once exp <= now - leeway
            return principal
        verifier.verified.discard(token)  # decoded again below, which names the reason
    claims = _decode(token, verifier)
    principal = Principal(
        user_id=_subject(claims.get("sub")),
        name=_name(claims.get("name"), claims["sub"]),
        roles=frozenset(r for r in _list(claims.get("roles")) if isinstance(r, str) and r in KNOWN_ROLES),
        segment=claims.get("segment") if claims.get("segment") in KNOWN_SEGMENTS else None,
        lines=tuple(sorted({n for n in _list(claims.get("lines")) if type(n) is int and n in KNOWN_LINES})),
    )
    # `exp` is required and PyJWT checked it is a number; nbf and iat, once passed, stay passed.
    verifier.verified.put(token, (principal, float(claims["exp"])))
    return principal


# PyJWT's exceptions, most specific first, with the reason we give back.
_REASONS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.MissingRequiredClaimError, "token lacks a required claim"),
    (jwt.InvalidAlgorithmError, "token algorithm not accepted"),
    (jwt.InvalidSignatureError, "token signature does not verify"),
    (jwt.DecodeError, "malformed token"),
)


def _decode(token: str, verifier: TokenVerifier) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            verifier.key,
            algorithms=list(verifier.algorithms),
            leeway=LEEWAY_SECONDS,
            # No audience is configured (shared/config.py has none): a signature by our key is the trust.
            options={"require": ["sub", "exp"], "verify_aud": False},
        )
    except jwt.InvalidTokenError as e:
        reason = next((text for kind, text in _REASONS if isinstance(e, kind)), "invalid token")
        raise Unauthorized(reason) from e


def _subject(sub: object) -> str:
    # `sub` becomes a stream id and a member id: it must fit the catalogue's Id type.
    if not isinstance(sub, str) or not sub.strip() or len(sub) > ID_MAX or "\x00" in sub:
        raise Unauthorized("token subject is not a usable user id")
    return sub


def _name(name: object, sub: str) -> str:
    """The display name, or the user id when the token has none; a long one is cut, not refused."""
    if not isinstance(name, str) or not name.replace("\x00", "").strip():
        return sub[:NAME_MAX]
    return name.replace("\x00", "").strip()[:NAME_MAX]


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("authorization is not a bearer token")
    return token.strip()


def principal_dependency(verifier: TokenVerifier) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency answering the caller's Principal; it raises Unauthorized (routes: 401)."""

    async def current_principal(authorization: Annotated[str | None, Header()] = None) -> Principal:
        return verify_token(bearer_token(authorization), verifier)

    return current_principal


async def current_principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The same as `principal_dependency`, with the verifier from `app.state.token_verifier`."""
    verifier: TokenVerifier = request.app.state.token_verifier
    return verify_token(bearer_token(authorization), verifier)
