"""Identity: the host site signs a JWT for each attendee; the server checks it and its roles.

Tokens are HS256 only (the algorithm is pinned here, never read from the token, RFC 8725).
Several secrets can be active at once, each under a key id (``kid``), so keys rotate during a
broadcast: a token is checked with the secret its ``kid`` names, and an unknown ``kid`` is refused.
A token without ``kid`` is accepted only while exactly one secret is configured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from .errors import ConfigError, Forbidden, Unauthorized
from .protocol import ROLES
from .text import clean_label

ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 8192  # characters, as on the feed
WILDCARD_EVENT = "*"
REQUIRED_CLAIMS = ("sub", "role", "event", "iss", "aud", "exp")
_RANK = {role: rank for rank, role in enumerate(ROLES)}

log = logging.getLogger("backchannel.auth")


@dataclass(frozen=True, slots=True)
class Identity:
    sub: str
    name: str
    profession: str
    city: str
    region: str
    country: str
    role: str
    event: str
    expires_at: float

    def has_role(self, role: str, event: str) -> bool:
        """At least ``role`` (attendee < presenter < moderator < admin) for ``event``."""
        in_scope = self.event in (WILDCARD_EVENT, event)
        return in_scope and _RANK[self.role] >= _RANK[role]

    def require(self, role: str, event: str) -> None:
        if self.event not in (WILDCARD_EVENT, event):
            raise Forbidden("wrong_event", f"the token is for event {self.event!r}, not {event!r}")
        if _RANK[self.role] < _RANK[role]:
            raise Forbidden(
                "role_required", f"this needs the {role} role; the token has {self.role}"
            )


def parse_secrets(value: str) -> dict[str, str]:
    """``kid=secret,kid2=secret2``, or one bare secret (kid ``""``)."""
    if not value.strip():
        return {}
    keys: dict[str, str] = {}
    for item in value.split(","):
        kid, sep, secret = item.strip().partition("=")
        if not sep:
            kid, secret = "", kid
        if len(secret) < 16:
            raise ConfigError(
                f"JWT_SECRETS: the secret for kid {kid!r} is shorter than 16 characters"
            )
        keys[kid] = secret
    return keys


def development_secret(data_dir: Path) -> dict[str, str]:
    """A secret kept in ``data_dir`` so that ``backchannel token`` and ``serve`` agree locally."""
    path = data_dir / "jwt-secret"
    if not path.exists():
        # Several processes may start at once: each writes a whole file aside and links it into
        # place, which only the first one does; all then read the same secret.
        data_dir.mkdir(parents=True, exist_ok=True)
        aside = data_dir / f".jwt-secret.{os.getpid()}"
        aside.write_text(secrets.token_urlsafe(32))
        aside.chmod(0o600)
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
        aside.unlink()
    return {"dev": path.read_text().strip()}


VERIFIED_TOKENS = 10_000  # tokens remembered as verified, per process
VERIFIED_FOR = 60.0  # seconds before a remembered token is verified again


class TokenVerifier:
    def __init__(self, keys: dict[str, str], issuer: str, audience: str, leeway: float) -> None:
        if not keys:
            raise ConfigError("no JWT secret configured")
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        # Tokens verified lately -> (identity, when to verify again): a client sends the same
        # token with every request, and checking its signature and claims each time is most of
        # a small request's CPU. The exact string was verified with these keys; it is looked at
        # again after VERIFIED_FOR seconds, and never used past its expiry.
        self._verified: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    def verify(self, token: str) -> Identity:
        """The identity in ``token``, or :class:`Unauthorized` saying what is wrong (logged
        without the token)."""
        now = time.time()
        known = self._verified.get(token)
        if known is not None and now < known[1]:
            self._verified.move_to_end(token)
            return known[0]
        try:
            if len(token) > MAX_TOKEN_LENGTH:
                raise Unauthorized(
                    "token_malformed", f"tokens are limited to {MAX_TOKEN_LENGTH} characters"
                )
            identity = _identity(self._decode(token))
        except Unauthorized as exc:
            log.info("token refused: %s", exc.message)
            raise
        self._verified[token] = (identity, min(now + VERIFIED_FOR, identity.expires_at))
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return identity

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("token_malformed", "the token is not a well-formed JWT") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthorized("token_algorithm", f"tokens must be signed with {ALGORITHM}")
        kid = header.get("kid")
        if kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        elif isinstance(kid, str) and kid in self._keys:
            key = self._keys[kid]
        else:
            raise Unauthorized("token_unknown_key", f"no active signing key has kid {kid!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token_expired", "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("token_not_yet_valid", "the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token_audience", "the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token_issuer", "the token has an unknown issuer") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("token_signature", "the token's signature does not match") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized("token_claims", f"the token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized("token_invalid", f"the token is invalid: {exc}") from None
        return claims


def _identity(claims: dict[str, Any]) -> Identity:
    sub, role, event = claims["sub"], claims["role"], claims["event"]
    if not isinstance(sub, str) or not 1 <= len(sub) <= 200 or not storable(sub):
        raise Unauthorized("token_claims", "the token's 'sub' must be a string of 1-200 characters")
    exp = claims["exp"]
    if type(exp) not in (int, float) or not 0 < exp < 2**53:
        raise Unauthorized("token_claims", "the token's 'exp' must be a number of seconds")
    if not isinstance(role, str) or role not in _RANK:
        raise Unauthorized(
            "token_role", f"unknown role {role!r}; expected one of {', '.join(ROLES)}"
        )
    if not isinstance(event, str) or not event:
        raise Unauthorized("token_claims", "the token's 'event' must be an event slug or '*'")
    country = clean_label(claims.get("country")).upper()
    return Identity(
        sub=sub,
        name=clean_label(claims.get("name")),
        profession=clean_label(claims.get("profession")),
        city=clean_label(claims.get("city")),
        region=clean_label(claims.get("region")),
        country=country if len(country) == 2 and country.isalpha() and country.isascii() else "",
        role=role,
        event=event,
        expires_at=float(claims["exp"]),
    )


def storable(text: str) -> bool:
    """Neither NUL nor a lone surrogate, which no database stores (refused, never cleaned: a
    cleaned ``"a\x00b"`` would become the user ``"ab"``)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def issue_token(
    keys: dict[str, str], *, issuer: str, audience: str, ttl: float, **claims: str
) -> str:
    """A signed token with the newest configured key (the last one listed)."""
    kid, secret = list(keys.items())[-1]
    now = int(time.time())
    payload = {"iss": issuer, "aud": audience, "iat": now, "exp": now + int(ttl), **claims}
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, secret, algorithm=ALGORITHM, headers=headers)
