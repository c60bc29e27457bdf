"""Bearer token verification: what is accepted, what is refused and why, and configuration at start."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from services.gateway.auth import (
    LEEWAY_SECONDS,
    Principal,
    TokenVerifier,
    bearer_token,
    principal_dependency,
    verify_token,
)
from services.gateway.errors import Unauthorized
from shared.config import load_settings
from shared.errors import ConfigError

SECRET = "test-secret-that-is-long-enough-for-hs256"
HS = TokenVerifier(SECRET, ("HS256",))


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "name": "Alice", "roles": ["user"], "exp": int(time.time()) + 60} | extra


def hs(**extra: Any) -> str:
    return jwt.encode(claims(**extra), SECRET, algorithm="HS256")


def refused(token: str, verifier: TokenVerifier = HS) -> str:
    with pytest.raises(Unauthorized) as e:
        verify_token(token, verifier)
    return e.value.reason


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "public.pem"
    path.write_bytes(data)
    return path


def test_a_valid_hs256_token_gives_its_principal() -> None:
    token = hs(roles=["agent", "wizard", 7], segment="suppliers", lines=[2, 1, 5, True, 2])
    assert verify_token(token, HS) == Principal("alice", "Alice", frozenset({"agent"}), "suppliers", (1, 2))


def test_missing_optional_claims_have_safe_defaults() -> None:
    token = jwt.encode({"sub": "bob", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert verify_token(token, HS) == Principal("bob", "bob", frozenset(), None, ())
    assert verify_token(hs(segment="vip", roles="admin", lines="1"), HS).segment is None


def test_expired_token_is_refused() -> None:
    assert refused(hs(exp=int(time.time()) - 60)) == "token expired"


def test_small_clock_skew_is_tolerated() -> None:
    assert verify_token(hs(exp=int(time.time()) - 2), HS).user_id == "alice"


def test_sub_and_exp_are_required() -> None:
    no_exp = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    no_sub = jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert refused(no_exp) == refused(no_sub) == "token lacks a required claim"
    assert refused(hs(sub="")) == "token subject is not a usable user id"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "Bearer x", "x" * 10_000])
def test_malformed_token_is_refused(token: str) -> None:
    assert refused(token) == "malformed token"


def test_wrong_signature_is_refused() -> None:
    token = jwt.encode(claims(), "another-secret-of-sufficient-length!!", algorithm="HS256")
    assert refused(token) == "token signature does not verify"


def test_alg_none_is_refused() -> None:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims())}."
    assert refused(unsigned) == "token algorithm not accepted"
    assert refused(jwt.encode(claims(), None, algorithm="none")) == "token algorithm not accepted"


def test_rs256_with_a_public_key_file(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = load_settings({}, jwt_public_key_file=str(key_file(tmp_path, pem(private))), jwt_secret="ignored")
    verifier = TokenVerifier.from_settings(settings)
    assert verifier.algorithms == ("RS256",)
    assert verify_token(jwt.encode(claims(), private, algorithm="RS256"), verifier).user_id == "alice"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert refused(jwt.encode(claims(), other, algorithm="RS256"), verifier) == "token signature does not verify"
    assert refused(hs(), verifier) == "token algorithm not accepted"


def test_hs256_signed_with_the_public_key_text_is_refused(tmp_path: Path) -> None:
    """Algorithm confusion: the public key is public, so it must never work as an HMAC secret."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    verifier = TokenVerifier.from_public_key_file(key_file(tmp_path, pem(private)))
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = ".".join(
        base64.urlsafe_b64encode(orjson.dumps(v)).rstrip(b"=").decode() for v in (header, claims())
    )
    signature = hmac.new(pem(private), signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    assert refused(forged, verifier) == "token algorithm not accepted"


def test_es256_with_a_public_key_file(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    verifier = TokenVerifier.from_public_key_file(key_file(tmp_path, pem(private)))
    assert verifier.algorithms == ("ES256",)
    assert verify_token(jwt.encode(claims(), private, algorithm="ES256"), verifier).name == "Alice"


def test_configuration_must_name_a_usable_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one must be set"):
        TokenVerifier.from_settings(load_settings({}))
    with pytest.raises(ConfigError, match="cannot read"):
        TokenVerifier.from_settings(load_settings({}, jwt_public_key_file=str(tmp_path / "missing.pem")))
    with pytest.raises(ConfigError, match="not a PEM public key"):
        TokenVerifier.from_public_key_file(key_file(tmp_path, b"garbage"))
    with pytest.raises(ConfigError, match="RSA or a P-256"):
        TokenVerifier.from_public_key_file(key_file(tmp_path, pem(ed25519.Ed25519PrivateKey.generate())))
    assert TokenVerifier.from_settings(load_settings({}, jwt_secret=SECRET)).algorithms == ("HS256",)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   "])
def test_bearer_header_must_carry_a_token(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        bearer_token(header)


async def test_dependency_reads_the_authorization_header() -> None:
    app = FastAPI()

    @app.exception_handler(Unauthorized)
    async def unauthorized(_request: Any, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Unauthorized)
        return JSONResponse({"detail": exc.reason}, status_code=401)

    @app.get("/me")
    async def me(principal: Principal = Depends(principal_dependency(HS))) -> dict[str, str]:  # noqa: B008
        return {"user_id": principal.user_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        ok = await client.get("/me", headers={"Authorization": f"bearer {hs()}"})
        answer = await client.get("/me")
    assert ok.json() == {"user_id": "alice"}
    assert (answer.status_code, answer.json()) == (401, {"detail": "missing bearer token"})


def test_a_verified_token_is_remembered_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(SECRET, ("HS256",))
    token = hs(exp=int(time.time()) + 30)
    first = verify_token(token, verifier)
    assert verify_token(token, verifier) is first  # the second use is answered without decoding again
    later = time.time() + 30 + LEEWAY_SECONDS + 1

    class Later(datetime):  # PyJWT's clock
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Later:
            return cls.fromtimestamp(later, tz)

    monkeypatch.setattr(time, "time", lambda: later)  # ours
    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
    assert refused(token, verifier) == "token expired"  # remembered or not, an expired token is refused
    assert len(verifier.verified) == 0


def test_a_token_one_verifier_accepted_is_not_taken_by_another() -> None:
    token = hs()
    verify_token(token, HS)
    other = TokenVerifier("another-secret-that-is-long-enough-for-hs256", ("HS256",))
    assert refused(token, other) == "token signature does not verify"
