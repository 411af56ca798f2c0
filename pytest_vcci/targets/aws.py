"""The ``cloud`` target: AWS APIs through boto3, read-only and time-bounded.

Every client made by :class:`Cloud` carries botocore event hooks, registered on the
session so that every client (and resource) made from it inherits them:

- ``before-parameter-build`` fires inside ``_make_api_call`` before the request is validated,
  serialised, signed or sent. There the guard refuses any operation that is not on the read
  allowlist (:func:`is_read_operation`) with :class:`ReadOnlyViolation`, and the run-wide gate
  refuses at once when an earlier call found AWS unreachable.
- ``after-call-error`` / ``after-call`` notice connection failures (refused, timed out) and
  authentication failures; they mark the target down for the whole run, so later checks fail
  fast with the same root cause instead of each waiting for its own timeout.
- ``needs-retry`` / ``before-send`` do the same per attempt: a connection failure marks AWS
  down at once and botocore's retry of it is refused before it is sent, so an endpoint that
  hangs costs one read timeout, not one per attempt. (Throttling and 5xx answers are still
  retried, up to ``max_attempts``.)

boto3/botocore are imported on first use only: this module is loaded into every pytest run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from pytest_vcci.targets.base import ReadOnlyViolation, TargetUnreachable, one_line

if TYPE_CHECKING:
    from pytest_vcci.context import RunContext
    from pytest_vcci.settings import AwsTable
    from pytest_vcci.targets.base import TargetGate

TARGET = "aws"

# Operation-name prefixes that only read. Everything else (Create/Put/Delete/Update/Modify/
# Start/Stop/Rotate/Terminate/Invoke/Assume/...) is refused.
READ_PREFIXES = ("Describe", "Get", "List", "Head", "Lookup", "BatchGet")
# Reads whose names do not start with a read prefix.
READ_OPERATIONS = frozenset(
    {
        "BatchCheckLayerAvailability",  # ECR: are these layers present
        "SimulatePrincipalPolicy",  # IAM: least-privilege checks evaluate, change nothing
        "SimulateCustomPolicy",
    }
)
# Reads that would bring a secret (or a credential) into the process: secrets never leave.
SECRET_READS = frozenset(
    {
        "GetSecretValue",
        "BatchGetSecretValue",  # Secrets Manager values
        "GetAuthorizationToken",  # ECR docker login password
        "GetPasswordData",  # EC2 Windows administrator password
        "GetSessionToken",
        "GetFederationToken",  # STS: mint credentials
        "GetCredentialsForIdentity",
        "GetOpenIdToken",  # Cognito identity
        "GetClusterCredentials",
        "GetClusterCredentialsWithIAM",  # Redshift
        "GetRoleCredentials",  # SSO
    }
)
# SSM reads that decrypt SecureString parameters when asked to.
DECRYPTING_READS = frozenset(
    {"GetParameter", "GetParameters", "GetParametersByPath", "GetParameterHistory"}
)

# Error codes that mean "these credentials do not work here" (not "this one call is denied").
AUTH_ERROR_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "RequestExpired",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
    }
)


def is_read_operation(operation: str, params: dict[str, Any] | None = None) -> bool:
    """True if an AWS operation only reads and brings no secret value back."""
    if operation in SECRET_READS:
        return False
    if operation in DECRYPTING_READS and (params or {}).get("WithDecryption"):
        return False
    return operation in READ_OPERATIONS or operation.startswith(READ_PREFIXES)


def connection_errors() -> tuple[type[BaseException], ...]:
    """botocore's errors that mean the endpoint or the credentials are unusable."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    return (
        EndpointConnectionError,
        ConnectTimeoutError,
        ReadTimeoutError,
        ConnectionClosedError,
        NoCredentialsError,
        PartialCredentialsError,
    )


def _safe_url(url: str | None) -> str | None:
    """An endpoint URL without user info or query (where a secret could hide)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class Cloud:
    """Guarded boto3 access to one AWS account/region (or a local stand-in such as moto)."""

    def __init__(self, table: AwsTable, gate: TargetGate | None = None) -> None:
        self.table = table
        self.gate = gate
        self._session: Any = None
        self._clients: dict[tuple[str, str, bool], Any] = {}

    def __repr__(self) -> str:
        details = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"Cloud({details})"

    def describe(self) -> dict[str, Any]:
        """What this target is, for evidence: never a key, token or password."""
        table = self.table
        if table.access_key_id:
            credentials = "explicit keys"
        elif table.profile:
            credentials = f"profile {table.profile}"
        else:
            credentials = "default chain"
        return {
            "region": table.region,
            "endpoint_url": _safe_url(table.endpoint_url),
            "credentials": credentials,
            "connect_timeout": table.connect_timeout,
            "read_timeout": table.read_timeout,
            "max_attempts": table.max_attempts,
        }

    @property
    def region(self) -> str:
        return self.table.region

    # --- clients --------------------------------------------------------------------------

    def _boto_session(self) -> Any:
        if self._session is None:
            import boto3

            table = self.table
            session = boto3.Session(
                profile_name=table.profile,
                aws_access_key_id=table.access_key_id,
                aws_secret_access_key=table.secret_access_key,
                aws_session_token=table.session_token,
                region_name=table.region,
            )
            # On the session: every client and resource made from it inherits the hooks.
            session.events.register("before-parameter-build", self._guard)
            session.events.register("after-call-error", self._on_call_error)
            session.events.register("after-call", self._on_call)
            # Per attempt: a connection that failed or timed out marks AWS down at once, and
            # the gate refuses botocore's retry of it (a hung endpoint costs one read timeout).
            session.events.register("needs-retry", self._on_attempt)
            session.events.register("before-send", self._before_send)
            self._session = session
        return self._session

    def client(self, service: str, region: str | None = None, *, probe: bool = False) -> Any:
        """A read-only, time-bounded client for ``service`` (cached per service and region).

        ``probe``: the reachability probe's client waits no longer than a connect and does not
        retry, so a server that accepts and never answers costs one connect timeout.
        """
        key = (service, region or self.table.region, probe)
        if key not in self._clients:
            from botocore.config import Config

            table = self.table
            config = Config(
                connect_timeout=table.connect_timeout,
                read_timeout=table.connect_timeout if probe else table.read_timeout,
                # total_max_attempts counts the first request; botocore's "max_attempts"
                # would count retries only (one more request than the table says).
                retries={
                    "total_max_attempts": 1 if probe else table.max_attempts,
                    "mode": "standard",
                },
                user_agent_extra="pytest-vcci",
            )
            self._clients[key] = self._boto_session().client(
                service, region_name=key[1], endpoint_url=table.endpoint_url, config=config
            )
        return self._clients[key]

    def call(self, service: str, operation: str, **params: Any) -> Any:
        """``client(service).<operation>(**params)`` with the failure turned into the root cause.

        ``operation`` is the snake_case method name (``describe_db_instances``).
        """
        with self.watch():
            return getattr(self.client(service), operation)(**params)

    def paginate(self, service: str, operation: str, key: str, **params: Any) -> list[Any]:
        """All items under ``key`` of every page of a paginated read."""
        items: list[Any] = []
        with self.watch():
            paginator = self.client(service).get_paginator(operation)
            for page in paginator.paginate(**params):
                items.extend(page.get(key, []))
        return items

    # --- fail fast ------------------------------------------------------------------------

    def probe(self) -> str:
        """The cheapest authenticated call: who are we (STS GetCallerIdentity)."""
        identity = self.client("sts", probe=True).get_caller_identity()
        return str(identity.get("Arn", ""))

    def ensure(self) -> None:
        """Probe AWS once per run (across xdist workers); raise TargetUnreachable if down."""
        if self.gate is None:
            self._probe_or_raise()
        else:
            self.gate.ensure(TARGET, self._probe_or_raise)

    def _probe_or_raise(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.probe()
        except ClientError as exc:
            raise TargetUnreachable(TARGET, one_line(exc)) from None

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Connection-level failures inside mark AWS down for the rest of the run."""
        if self.gate is None:
            try:
                yield
            except connection_errors() as exc:
                raise TargetUnreachable(TARGET, one_line(exc)) from exc
            return
        with self.gate.watch(TARGET, *connection_errors()):
            yield

    # --- event hooks ----------------------------------------------------------------------

    def _guard(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        # A write is refused as such even when AWS is down: it is a bug in the check.
        operation: str = model.name
        if not is_read_operation(operation, params):
            service = model.service_model.service_name
            raise ReadOnlyViolation(f"AWS {service}", f"{operation} (not a read-only operation)")
        if self.gate is not None:
            self.gate.check(TARGET)

    def _on_attempt(self, caught_exception: BaseException | None = None, **_: Any) -> None:
        if self.gate is not None and isinstance(caught_exception, connection_errors()):
            self.gate.mark_down(TARGET, one_line(caught_exception))

    def _before_send(self, **_: Any) -> None:
        if self.gate is not None:
            self.gate.check(TARGET)

    def _on_call_error(self, exception: BaseException, **_: Any) -> None:
        if self.gate is not None and isinstance(exception, connection_errors()):
            self.gate.mark_down(TARGET, one_line(exception))

    def _on_call(self, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        code = str(((parsed or {}).get("Error") or {}).get("Code", ""))
        if self.gate is not None and code in AUTH_ERROR_CODES:
            message = str(parsed["Error"].get("Message", "")) if parsed else ""
            self.gate.mark_down(TARGET, f"ClientError: {code}: {message}"[:300])


def build_cloud(context: RunContext) -> Cloud:
    """The Cloud for this run's ``[aws]`` table (skips when it is absent)."""
    table: AwsTable = context.target_table("aws")
    return Cloud(table, gate=context.gate)


@pytest.fixture(scope="session")
def cloud(vcci_context: RunContext) -> Cloud:
    """Read-only AWS access for the run; errors at once if AWS cannot be reached."""
    target = build_cloud(vcci_context)
    target.ensure()
    return target


__all__ = ["Cloud", "build_cloud", "cloud", "is_read_operation"]
