"""What `mailhooks diff` found: data only, rendered by `gitops.report` and `gitops.github`.

The json format is this model as it is, and `schema/diff.schema.json` is generated from
it. Nothing here holds a secret's value: a secret appears as its reference only.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from mailhooks.events import FILTER_FIELDS, EventName

Because = Literal["added", "removed", "changed", "turned inactive", "active again",
                  "filters widened", "filters narrowed"]
Change = Literal["starts", "stops", "may start", "may stop"]
Unknown = Literal["filters widened", "filters narrowed"]
FilterField = Literal["sending_domain", "sending_node", "bridge", "dedicated_ip"]
assert get_args(FilterField) == FILTER_FIELDS, "the filters of a webhook"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Side(_Model):
    """One side of the comparison: a git revision, or a directory as it is on disk."""

    given: str = Field(description="The argument as given: a revision or a directory.")
    kind: Literal["revision", "directory"] = Field(
        description="revision: read from git; directory: the files on disk (a working tree)."
    )
    commit: str | None = Field(default=None, description="The commit a revision resolved to.")
    directory: str = Field(
        description="The webhooks directory, relative to its repository's root when in one."
    )
    webhooks: int = Field(ge=0, description="Valid webhooks on this side.")
    invalid_files: int = Field(
        default=0, ge=0, description="Files that did not validate: left out of the comparison."
    )


class HeadError(_Model):
    """A HEAD file that does not validate, or a secret the config's grants refuse."""

    file: str = Field(description="The file, relative to the repository root when in one.")
    line: int = Field(ge=1, description="1-based line.")
    column: int = Field(ge=1, description="1-based column.")
    message: str = Field(description="What is wrong, in one line.")


class SecretSent(_Model):
    """A secret reference that goes to a destination it did not go to before."""

    reference: str = Field(description="The reference (${env:…}, ${file:…}, ${credential:…}), never a value.")
    destination: str = Field(description="Where it now goes: an origin, or the channel's service.")
    webhook: str = Field(description="The webhook (id) that sends it there.")
    file: str = Field(description="The webhook's file.")
    line: int = Field(ge=1, description="The line of the reference in the file.")
    active: bool = Field(
        description="true: sent from the merge on; false: in an inactive webhook, sent once it is active."
    )
    refused: str | None = Field(
        default=None, description="Why the config's secrets.grants refuse it (with --config)."
    )


class Added(_Model):
    """A webhook that HEAD has and BASE had not."""

    id: str = Field(description="The new webhook's id.")
    name: str = Field(description="Its display name.")
    file: str = Field(description="Its file.")
    status: Literal["active", "inactive"] = Field(description="Its status.")
    events: Literal["all"] | list[EventName] = Field(description="The events it selects.")
    endpoint: str = Field(description="Where its events go, for people (no query string).")
    similar_to: str | None = Field(
        default=None, description="A removed webhook of the same name: a rename with changes."
    )


class Removed(_Model):
    """A webhook that BASE had and HEAD has not."""

    id: str = Field(description="The removed webhook's id.")
    name: str = Field(description="Its display name.")
    file: str = Field(description="Its file in BASE.")


class Renamed(_Model):
    """A file moved with its content unchanged: the webhook gets a new id."""

    old_id: str = Field(description="The id in BASE.")
    new_id: str = Field(description="The id in HEAD.")
    old_file: str = Field(description="The file in BASE.")
    new_file: str = Field(description="The file in HEAD.")
    name: str = Field(description="The display name (unchanged).")


class FieldChange(_Model):
    """One field of a webhook, before and after; an absent side means the field was not set."""

    field: str = Field(description="The field's path: channel.url, filters.sending_domain, …")
    old: Any = Field(default=None, description="The value in BASE (URLs without their query).")
    new: Any = Field(default=None, description="The value in HEAD (URLs without their query).")
    line: int = Field(ge=1, description="Where the field is (or would be) in the HEAD file.")


class Changed(_Model):
    """A webhook in both, with fields changed."""

    id: str = Field(description="The webhook's id.")
    name: str = Field(description="Its display name in HEAD.")
    file: str = Field(description="Its file.")
    changes: list[FieldChange] = Field(description="The fields that changed, in document order.")


class StatusChange(_Model):
    """A webhook turned inactive, or active again."""

    webhook: str = Field(description="The webhook's id.")
    file: str = Field(description="Its file.")
    line: int = Field(ge=1, description="The line of its status.")
    status: Literal["active", "inactive"] = Field(description="Its status in HEAD.")


class Effect(_Model):
    """Events that newly reach a destination, or no longer reach it, through one webhook."""

    change: Change = Field(
        description="starts: these events newly reach the destination; stops: no longer. "
                    "may start, may stop: the webhook's filters widened or narrowed, so some "
                    "of these events, how many the files cannot say, newly reach it or stop."
    )
    destination: str = Field(description="An origin (https://host[:port]) or the channel's service.")
    events: list[EventName] = Field(min_length=1, description="The events concerned.")
    webhook: str = Field(description="The webhook (id) they go through.")
    file: str = Field(description="The webhook's file (in HEAD, or in BASE when removed).")
    line: int | None = Field(default=None, ge=1, description="The line in the HEAD file, if it exists.")
    because: Because = Field(
        description="Why: the webhook was added, removed, changed, its status, or its filters."
    )
    filters: str | None = Field(
        default=None, description="Only events that match these filters (so fewer than all); "
                                  "for may start and may stop, the filters in HEAD."
    )
    filters_changed: list[FilterField] | None = Field(
        default=None, description="For may start and may stop: the filters that widened (a "
                                  "filter removed, a value added) or narrowed (the reverse)."
    )


class Rate(_Model):
    """How often the measured daemon received one event."""

    event: EventName = Field(description="The event.")
    per_hour: float = Field(ge=0, description="Events received per hour since the daemon started.")


class DestinationCost(_Model):
    """Deliveries per hour the change adds to, and removes from, one destination."""

    destination: str = Field(description="The destination.")
    added_per_hour: float = Field(ge=0, description="Deliveries per hour the change adds.")
    removed_per_hour: float = Field(ge=0, description="Deliveries per hour the change removes.")
    upper_bound: bool = Field(
        description="true when filters select among the events: the real numbers are lower."
    )
    unknown: list[Unknown] | None = Field(
        default=None, description="What the counters cannot tell: how many more events a "
        "webhook's widened filters let through to the destination, or how many fewer its "
        "narrowed ones do. The numbers then count every event of the types concerned."
    )


class Estimate(_Model):
    """What the merge will cost, from the counters of a running daemon."""

    source: str = Field(description="Where the counters came from: a socket or a saved file.")
    measured_at: str = Field(description="When they were read (ISO 8601; a file's modification time).")
    seconds: float = Field(ge=0, description="Seconds the daemon had run: the rates are averages over them.")
    rates: list[Rate] = Field(description="Events per hour, by event.")
    destinations: list[DestinationCost] = Field(description="The cost per destination.")
    notes: list[str] = Field(description="What the numbers assume.")


class Diff(_Model):
    """What a change to the webhooks does, from BASE to HEAD."""

    model_config = ConfigDict(title="mailhooks diff")

    base: Side = Field(description="The state before the change.")
    head: Side = Field(description="The state after the change.")
    secrets_newly_sent: list[SecretSent] = Field(
        description="Every secret reference newly sent to a destination: what a reviewer must not miss."
    )
    errors: list[HeadError] = Field(
        description="HEAD files that do not validate and refused secrets: mailhooks diff exits 1."
    )
    added: list[Added] = Field(description="Webhooks added.")
    removed: list[Removed] = Field(description="Webhooks removed.")
    renamed: list[Renamed] = Field(description="Webhooks moved to a new file, so a new id.")
    changed: list[Changed] = Field(description="Webhooks changed, field by field.")
    status_changes: list[StatusChange] = Field(description="Webhooks turned inactive or active again.")
    effects: list[Effect] = Field(description="Events newly reaching a destination, or no longer.")
    estimate: Estimate | None = Field(
        default=None, description="Deliveries per hour the change adds (with --estimate)."
    )

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.renamed or self.changed)
