"""The daemon's config: one pydantic model, its defaults, and flags and systemd's env on top.

`schema/config.schema.json` is generated from `Settings`. Every key has a default, so
`mailhooks serve` runs with no config file at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from mailhooks.addresses import network
from mailhooks.documents.schema import describe_pattern
from mailhooks.secrets import SecretRef

DEFAULT_RETRY_SCHEDULE: Final = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


HOST_PORT_PATTERN: Final = describe_pattern(
    r"^.+:[0-9]{1,5}$", "is not HOST:PORT (127.0.0.1:8425, [::1]:8425)"
)


def _host_port(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (127.0.0.1:8425, [::1]:8425)")
    return text


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Network = Annotated[str, AfterValidator(network)]


class Egress(_Section):
    """Where deliveries may not go, checked on every address a host name resolves to.

    Loopback, unspecified and link-local addresses (and their IPv4-mapped forms) are
    always denied; `deny` adds ranges to that list, never replaces it; `allow` makes
    explicit exceptions to both."""

    deny: list[Network] = Field(
        default_factory=list, max_length=1000,
        description="CIDR ranges denied beside the built-in ones (e.g. your internal networks).",
    )
    allow: list[Network] = Field(
        default_factory=list, max_length=1000,
        description="Explicit exceptions, e.g. [127.0.0.1/32] for a receiver on this host.",
    )


class Tokens(_Section):
    """Bearer tokens of the TCP listener, as secret references, by role (SPEC §4a)."""

    send: list[SecretRef] = Field(
        default_factory=list, max_length=20,
        description="Tokens that may post events (POST /events, POST /sources/...).",
    )
    admin: list[SecretRef] = Field(
        default_factory=list, max_length=20, description="Tokens that may do everything."
    )


HostPort = Annotated[str, Field(pattern=HOST_PORT_PATTERN), AfterValidator(_host_port)]


class Http(_Section):
    """The optional TCP listener: the same API as the UNIX socket, every request but
    /healthz and /metrics with a bearer token."""

    listen: HostPort = Field(description="HOST:PORT, e.g. 127.0.0.1:8425.")
    tokens: Tokens = Field(default_factory=Tokens, description="Bearer tokens by role.")


def _http_shorthand(value: Any) -> Any:
    """`http: 127.0.0.1:8425` (the older form) means `http: {listen: 127.0.0.1:8425}`."""
    return {"listen": value} if isinstance(value, str) else value


class Api(_Section):
    """Who may administer the daemon over its UNIX socket (SPEC §4a)."""

    admin_groups: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50,
        description="Groups whose members (primary or supplementary) are admin; root and the "
        "daemon's own user always are.",
    )


class Grant(_Section):
    """Secrets that these webhooks may use, and where they may be sent."""

    secrets: list[SecretRef] = Field(min_length=1, max_length=100, description="The references.")
    webhooks: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        min_length=1, max_length=100, description="Webhook id globs (crm/*) that may use them."
    )
    destinations: list[Annotated[str, Field(pattern=r"^https?://[^/\s?#]+$")]] | None = Field(
        default=None, max_length=100,
        description="Origins (https://crm.example.com) the secrets may be sent to; any when absent.",
    )


class Secrets(_Section):
    """Which webhook may use which secret, and where it may go (SPEC §2)."""

    dirs: list[Path] = Field(
        default_factory=list, max_length=20,
        description="Directories ${file:} references must lie in (after following links); "
        "any path when empty.",
    )
    grants: list[Grant] | None = Field(
        default=None, max_length=1000,
        description="Grants; without them every reference is allowed (secrets are not scoped).",
    )


class Limits(_Section):
    """Bounds on webhooks and on intake."""

    max_webhooks: int = Field(default=100, ge=1, le=100000, description="Webhooks allowed.")
    max_file_bytes: int = Field(
        default=65536, ge=256, le=10485760, description="Largest webhook file read, in bytes."
    )
    max_body_bytes: int = Field(
        default=10485760, ge=1024, le=1073741824, description="Largest POST /events body, bytes."
    )
    max_batch_events: int = Field(
        default=10000, ge=1, le=1000000, description="Most events in one POST /events."
    )
    max_connections: int = Field(
        default=1024, ge=16, le=60000,
        description="Open API connections per listener; past it the longest-idle one is closed.",
    )


class Spool(_Section):
    """The durable queue of accepted events (SQLite in state_dir)."""

    max_bytes: int = Field(
        default=1073741824, ge=65536, description="Spool size at which intake answers 503."
    )
    retention: int = Field(
        default=604800, ge=0, description="Seconds delivered rows are kept before pruning."
    )
    webhook_share: float = Field(
        default=0.25, gt=0, le=1,
        description="The part of max_bytes one webhook's pending and failed deliveries may "
        "take; past it its oldest pending fail, then its oldest failed are evicted.",
    )


class Pushover(_Section):
    """The Pushover API."""

    api_url: str = Field(
        default="https://api.pushover.net", pattern=r"^https?://",
        description="Base URL of the Pushover API (for tests and proxies).",
    )


class Slack(_Section):
    """Slack's incoming webhooks."""

    api_url: str = Field(
        default="https://hooks.slack.com", pattern=r"^https?://",
        description="Base URL of Slack's incoming webhooks: a webhook URL must start with it "
        "and /services/ (for tests and proxies).",
    )


class Teams(_Section):
    """Microsoft Teams Workflows webhooks."""

    api_url: str | None = Field(
        default=None, pattern=r"^https?://",
        description="When set, a Teams webhook URL must start with it instead of being on a "
        "Workflows host (*.logic.azure.com, *.powerplatform.com); for tests and proxies.",
    )


class Discord(_Section):
    """Discord's webhooks."""

    api_url: str = Field(
        default="https://discord.com", pattern=r"^https?://",
        description="Base URL of Discord: a webhook URL must start with it and /api/webhooks/ "
        "(for tests and proxies).",
    )


class Telegram(_Section):
    """Telegram's Bot API."""

    api_url: str = Field(
        default="https://api.telegram.org", pattern=r"^https?://",
        description="Base URL of the Telegram Bot API (for tests and proxies).",
    )


class Log(_Section):
    """Logging: JSON lines for journald, or console lines for people."""

    format: Literal["json", "console"] | None = Field(
        default=None, description="json or console; console on a terminal, json otherwise."
    )
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level logged."
    )


class Settings(_Section):
    """The daemon's config file (mailhooks.yaml)."""

    model_config = ConfigDict(title="mailhooks config")

    webhooks_dir: Path = Field(
        default=Path("webhooks.d"), description="Directory of webhook files (*.yaml, *.yml)."
    )
    socket: Path | None = Field(
        default=None,
        description="UNIX socket of the API; $RUNTIME_DIRECTORY/mailhooks.sock or "
        "./.mailhooks/mailhooks.sock by default.",
    )
    http: Annotated[
        Http | None, BeforeValidator(_http_shorthand, json_schema_input_type=Http | HostPort)
    ] = Field(
        default=None, description="Optional TCP listener; off by default."
    )
    api: Api = Field(default_factory=Api, description="Who may administer over the UNIX socket.")
    state_dir: Path | None = Field(
        default=None,
        description="Where the spool lives; $STATE_DIRECTORY or ./.mailhooks by default.",
    )
    allow_http: bool = Field(default=False, description="Allow plain-http endpoint URLs.")
    egress: Egress = Field(default_factory=Egress, description="Egress restrictions.")
    secrets: Secrets = Field(default_factory=Secrets, description="Secret grants.")
    limits: Limits = Field(default_factory=Limits, description="Limits.")
    spool: Spool = Field(default_factory=Spool, description="Spool settings.")
    retry_schedule: list[Annotated[float, Field(ge=0, le=604800)]] = Field(
        default=list(DEFAULT_RETRY_SCHEDULE), max_length=50,
        description="Seconds before each retry, jittered; the delivery fails after the last.",
    )
    timeout: float = Field(default=15, gt=0, le=300, description="Default request timeout (s).")
    pause_after: float = Field(
        default=259200, ge=1, le=31536000,
        description="Seconds a webhook may only fail before the daemon pauses it (3 days).",
    )
    shutdown_grace: float = Field(
        default=10, ge=0, le=300, description="Seconds in-flight attempts get on SIGTERM."
    )
    pushover: Pushover = Field(default_factory=Pushover, description="Pushover API settings.")
    slack: Slack = Field(default_factory=Slack, description="Slack settings.")
    teams: Teams = Field(default_factory=Teams, description="Microsoft Teams settings.")
    discord: Discord = Field(default_factory=Discord, description="Discord settings.")
    telegram: Telegram = Field(default_factory=Telegram, description="Telegram settings.")
    log: Log = Field(default_factory=Log, description="Logging.")

    def socket_path(self, environ: Mapping[str, str] = os.environ) -> Path:
        if self.socket is not None:
            return self.socket
        runtime = environ.get("RUNTIME_DIRECTORY")
        if runtime:
            return Path(runtime.split(":")[0]) / "mailhooks.sock"
        return Path(".mailhooks") / "mailhooks.sock"

    def state_path(self, environ: Mapping[str, str] = os.environ) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        state = environ.get("STATE_DIRECTORY")
        if state:
            return Path(state.split(":")[0])
        return Path(".mailhooks")

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """Flags on top of the file: only the ones given (not None) count."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return self.model_validate({**self.model_dump(), **given}) if given else self
