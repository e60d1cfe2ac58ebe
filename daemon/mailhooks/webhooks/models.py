"""The typed model of one webhook file. `schema/webhook.schema.json` is generated from it.

The channel is validated as the config model of its `type`, looked up in the channel
registry: a new channel is one module in `mailhooks.channels`, nothing here.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, Union

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from mailhooks.addresses import network
from mailhooks.channels import registry
from mailhooks.channels.config import ChannelConfig, StrictModel
from mailhooks.documents.schema import describe_pattern, forget_validators
from mailhooks.events import FILTER_FIELDS, EventName

MAX_NAME_LENGTH: Final = 100
MAX_FILTER_VALUES: Final = 100

# Printable text with at least one visible character (no lookahead: pydantic's regex
# engine has none).
NAME_PATTERN: Final = describe_pattern(
    r"^[^\x00-\x08\x0a-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0a-\x1f\x7f]*$",
    "must be one line of visible text",
)
DOMAIN_PATTERN: Final = describe_pattern(
    r"^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$",
    "is not a domain name; a wildcard is allowed only as the whole first label (*.example.org)",
)

FilterValue = Annotated[str, Field(min_length=1, max_length=253)]
DomainValue = Annotated[str, Field(max_length=253, pattern=DOMAIN_PATTERN)]
NetworkValue = Annotated[str, Field(min_length=1, max_length=49), AfterValidator(network)]


class Filters(StrictModel):
    """Which events reach the webhook: each list matches any of its values; all lists must match."""

    sending_domain: list[DomainValue] | None = Field(
        default=None, min_length=1, max_length=MAX_FILTER_VALUES,
        description="Sending domains, case-insensitive; '*.example.org' matches every subdomain.",
    )
    sending_node: list[FilterValue] | None = Field(
        default=None, min_length=1, max_length=MAX_FILTER_VALUES,
        description="SMTP nodes the email was sent from.",
    )
    bridge: list[FilterValue] | None = Field(
        default=None, min_length=1, max_length=MAX_FILTER_VALUES,
        description="Bridges (SMTP credentials) the email was sent with.",
    )
    dedicated_ip: list[NetworkValue] | None = Field(
        default=None, min_length=1, max_length=MAX_FILTER_VALUES,
        description="Dedicated IPs the email left from: addresses or CIDR ranges.",
    )


assert tuple(Filters.model_fields) == FILTER_FIELDS, "a filter is a field of the event"


class _RegisteredChannel:
    """The `channel` field: validated by the registry, described in the schema as the
    union of every registered channel type, discriminated on `type`."""

    def __get_pydantic_core_schema__(self, _source: Any, _handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_info_wrap_validator_function(
            registry.validate_channel, core_schema.any_schema()
        )

    def __get_pydantic_json_schema__(
        self, _schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        configs = tuple(kind.config for kind in registry.kinds().values())
        members: Any = Union.__getitem__(configs)  # the registered types, known at run time
        union: Any = Annotated[members, Field(discriminator="type")]
        return handler(TypeAdapter(union).core_schema)


Channel = Annotated[ChannelConfig, _RegisteredChannel()]


class Webhook(StrictModel):
    """One webhook: which email events to send, and where."""

    model_config = ConfigDict(title="mailhooks webhook")

    name: str = Field(
        min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN,
        description="Display name, unique in the directory.",
    )
    status: Literal["active", "inactive"] = Field(
        default="active", description="inactive keeps the file but sends nothing."
    )
    event_type: Literal["email"] = Field(
        default="email", description="The kind of events; email is the only one today."
    )
    events: Literal["all"] | Annotated[list[EventName], Field(min_length=1)] = Field(
        description="The events to send, or all."
    )
    filters: Filters | None = Field(default=None, description="Only events that match these.")
    channel: Channel = Field(description="Where the events go.")

    @property
    def active(self) -> bool:
        return self.status == "active"


# A channel type registered at run time changes the webhook schema.
registry.on_change(forget_validators)
