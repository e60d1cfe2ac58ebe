"""The daemon's config: one pydantic model, its defaults, and flags and systemd's env on top.

`schema/config.schema.json` is generated from `Settings`. Every key has a default, so
`mailhooks serve` runs with no config file at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mailhooks.addresses import network

DEFAULT_RETRY_SCHEDULE: Final = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
# SPEC's loopback and link-local ranges, and the unspecified addresses (0.0.0.0, ::),
# which Linux connects to the local host.
DEFAULT_EGRESS_DENY: Final = (
    "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8", "::/128",
)


def _host_port(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (127.0.0.1:8425, [::1]:8425)")
    return text


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Egress(_Section):
    """Where deliveries may not go, checked on the address actually connected to."""

    deny: list[Annotated[str, AfterValidator(network)]] = Field(
        default=list(DEFAULT_EGRESS_DENY),
        description="CIDR ranges no endpoint may resolve to (loopback and link-local by default).",
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


class Spool(_Section):
    """The durable queue of accepted events (SQLite in state_dir)."""

    max_bytes: int = Field(
        default=1073741824, ge=65536, description="Spool size at which intake answers 503."
    )
    retention: int = Field(
        default=604800, ge=0, description="Seconds delivered rows are kept before pruning."
    )


class Pushover(_Section):
    """The Pushover API."""

    api_url: str = Field(
        default="https://api.pushover.net", pattern=r"^https?://",
        description="Base URL of the Pushover API (for tests and proxies).",
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
    http: Annotated[str, AfterValidator(_host_port)] | None = Field(
        default=None, description="Optional TCP listener, HOST:PORT; off by default."
    )
    state_dir: Path | None = Field(
        default=None,
        description="Where the spool lives; $STATE_DIRECTORY or ./.mailhooks by default.",
    )
    allow_http: bool = Field(default=False, description="Allow plain-http endpoint URLs.")
    egress: Egress = Field(default_factory=Egress, description="Egress restrictions.")
    limits: Limits = Field(default_factory=Limits, description="Limits.")
    spool: Spool = Field(default_factory=Spool, description="Spool settings.")
    retry_schedule: list[Annotated[float, Field(ge=0, le=604800)]] = Field(
        default=list(DEFAULT_RETRY_SCHEDULE), max_length=50,
        description="Seconds before each retry, jittered; the delivery fails after the last.",
    )
    timeout: float = Field(default=15, gt=0, le=300, description="Default request timeout (s).")
    shutdown_grace: float = Field(
        default=10, ge=0, le=300, description="Seconds in-flight attempts get on SIGTERM."
    )
    pushover: Pushover = Field(default_factory=Pushover, description="Pushover API settings.")
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
