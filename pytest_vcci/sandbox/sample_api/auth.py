"""Who is calling: JWT access/refresh tokens (HS256 or RS256) and API keys."""

from __future__ import annotations

import hmac
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from pytest_vcci.sandbox.sample_api.config import ROLE_PERMISSIONS, ApiConfig, JwtConfig


@dataclass(frozen=True)
class Principal:
    subject: str
    tenant: str
    role: str
    via: str  # "jwt" or "api_key"

    def can(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, ())


class AuthError(Exception):
    """A 401: ``code`` goes to the client, the message is generic and safe to show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TokenService:
    """Issues and verifies the API's JWTs."""

    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        self.algorithm = config.algorithm
        if config.algorithm == "RS256":
            self._signing_key: Any = Path(str(config.private_key)).read_bytes()
            self._verify_key: Any = Path(str(config.public_key)).read_bytes()
        else:
            self._signing_key = self._verify_key = config.secret

    def issue(
        self,
        subject: str,
        tenant: str,
        role: str,
        *,
        kind: str = "access",
        lifetime: int | None = None,
        now: float | None = None,
    ) -> str:
        now = time.time() if now is None else now
        if lifetime is None:
            lifetime = self.config.access_ttl if kind == "access" else self.config.refresh_ttl
        claims = {
            "iss": self.config.issuer,
            "aud": self.config.audience,
            "sub": subject,
            "tenant": tenant,
            "role": role,
            "typ": kind,
            "jti": uuid.uuid4().hex,
            "iat": int(now),
            "exp": int(now) + lifetime,
        }
        headers = {"kid": self.config.key_id}
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm, headers=headers)

    def verify(self, token: str, *, kind: str = "access") -> dict[str, Any]:
        """The claims of a valid token of ``kind``, or AuthError saying (generically) why not."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                options={"require": ["exp", "iat", "sub", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token_expired", "The token has expired") from None
        except jwt.InvalidSignatureError:
            raise AuthError("invalid_token", "The token signature is invalid") from None
        except jwt.DecodeError:
            raise AuthError("invalid_token", "The token is malformed") from None
        except jwt.InvalidTokenError:
            raise AuthError("invalid_token", "The token claims are invalid") from None
        if claims.get("typ") != kind:
            raise AuthError("invalid_token", f"An {kind} token is required")
        return claims

    def jwks(self) -> dict[str, Any]:
        """Public keys for OIDC clients; an HS256 secret is never published."""
        if self.algorithm != "RS256":
            return {"keys": []}
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        public = load_pem_public_key(self._verify_key)
        assert isinstance(public, rsa.RSAPublicKey)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        jwk.update({"kid": self.config.key_id, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}


class Authenticator:
    """Turns request headers into a Principal (or an AuthError)."""

    def __init__(self, config: ApiConfig, tokens: TokenService) -> None:
        self.config = config
        self.tokens = tokens

    def authenticate(self, headers: dict[str, str]) -> Principal:
        # A bad bearer token is an error even if an API key is also sent: no silent fallback.
        authorization = headers.get("authorization")
        if authorization is not None:
            return self._bearer(authorization)
        api_key = headers.get("x-api-key")
        if api_key is not None:
            return self._api_key(api_key)
        raise AuthError("authentication_required", "Send a bearer token or an X-API-Key header")

    def _bearer(self, authorization: str) -> Principal:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("invalid_token", "Authorization must be 'Bearer <token>'")
        claims = self.tokens.verify(token.strip())
        return self._principal(str(claims["sub"]), claims.get("tenant"), claims.get("role"), "jwt")

    def _api_key(self, presented: str) -> Principal:
        for key, entry in self.config.api_keys.items():
            # Constant-time compare: response timing must not reveal how much of a key matched.
            if hmac.compare_digest(key.encode(), presented.encode()):
                return self._principal(
                    entry.get("name", "api-key"), entry.get("tenant"), entry.get("role"), "api_key"
                )
        raise AuthError("invalid_api_key", "The API key is not valid")

    def _principal(self, subject: str, tenant: Any, role: Any, via: str) -> Principal:
        if tenant not in self.config.tenants or role not in ROLE_PERMISSIONS:
            raise AuthError("invalid_token", "The token claims are invalid")
        return Principal(subject, str(tenant), str(role), via)

    def login(self, username: str, password: str) -> Principal | None:
        user = self.config.users.get(username)
        expected = (user or {}).get("password", "")
        # Compare even for unknown users, so timing does not reveal which usernames exist.
        matches = hmac.compare_digest(expected.encode(), password.encode())
        if user is None or not matches or not expected:
            return None
        return Principal(username, user["tenant"], user["role"], "jwt")
