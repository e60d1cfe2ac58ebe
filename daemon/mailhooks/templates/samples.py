"""Sample events for `validate`: a template is rendered against each event its webhook
selects, once with the usual fields and once with only what every event has, so a
template that fails on some event fails in CI, with its `path:line:col`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Final

from mailhooks.events import EventName, sample
from mailhooks.templates.compiler import Template
from mailhooks.templates.errors import TemplateError
from mailhooks.templates.payload import PayloadTemplate
from mailhooks.templates.values import Variables, batch_variables, event_variables

SAMPLE_WEBHOOK_ID: Final = "sample/webhook"
SAMPLE_WEBHOOK_NAME: Final = "Sample webhook"
# What intake gives every event: the required fields, a timestamp and an event_id.
ALWAYS: Final = ("event", "email", "message_id", "timestamp", "event_id")
_DETAILS: Final[dict[str, dict[str, Any]]] = {
    "bounced": {"smtp_code": 550, "dsn_status": "5.1.1",
                "diagnostic": "550 5.1.1 <recipient@example.com>: Recipient address rejected"},
    "rejected": {"smtp_code": 554, "dsn_status": "5.7.1", "diagnostic": "554 5.7.1 Message rejected"},
    "delayed": {"smtp_code": 421, "dsn_status": "4.4.1", "diagnostic": "421 4.4.1 Connection timed out"},
}


def sample_payload(event_name: EventName, *, bare: bool = False) -> dict[str, Any]:
    """A sample event's payload: `mailhooks test`'s sample with its usual fields (and the
    bounce details of its kind), or with `bare` only the fields every event has."""
    payload = sample(event_name).payload()
    if bare:
        return {key: value for key, value in payload.items() if key in ALWAYS}
    payload.update(_DETAILS.get(event_name, {}))
    payload["metadata"] = {"source": "sample"}
    return payload


def sample_context(event_name: EventName, *, bare: bool = False) -> Variables:
    """The variables of a sample event of `event_name` (see `sample_payload`)."""
    return event_variables(sample_payload(event_name, bare=bare),
                           webhook_id=SAMPLE_WEBHOOK_ID, webhook_name=SAMPLE_WEBHOOK_NAME)


def check(template: Template | PayloadTemplate, event_names: Iterable[EventName], *,
          per_batch: bool = False, item: PayloadTemplate | None = None) -> list[TemplateError]:
    """Renders `template` as delivery will: for a sample of each event name, full and bare;
    or, `per_batch`, for a batch of those samples, full and bare (each first rendered by
    `item`, the per-event payload, when there is one). Returns the distinct errors, each
    saying which sample failed."""
    names = list(dict.fromkeys(event_names))
    kinds = [(False, ""), (True, " with no optional fields")]
    samples: list[tuple[str, Callable[[], Variables]]]
    if per_batch:
        samples = [(f"a sample batch of events{lacking}", partial(_batch_context, names, bare, item))
                   for bare, lacking in kinds]
    else:
        samples = [(f"a sample {name!r} event{lacking}", partial(sample_context, name, bare=bare))
                   for name in names for bare, lacking in kinds]
    errors: dict[tuple[str, int, int, str], TemplateError] = {}
    for description, make_variables in samples:
        try:
            variables = make_variables()
        except TemplateError:
            continue  # `item` fails on this sample: its own check reports that, at its place
        try:
            template.render(variables)
        except TemplateError as error:
            key = (error.file, error.line, error.column, error.message)
            if key not in errors:
                errors[key] = TemplateError(f"{error.message} (rendering {description})",
                                            error.file, error.line, error.column)
    return list(errors.values())


def _batch_context(names: list[EventName], bare: bool, item: PayloadTemplate | None) -> Variables:
    events = [sample_payload(name, bare=bare) for name in names]
    if item is None:
        return batch_variables(events, webhook_id=SAMPLE_WEBHOOK_ID, webhook_name=SAMPLE_WEBHOOK_NAME)
    rendered = [item.render(event_variables(event, webhook_id=SAMPLE_WEBHOOK_ID,
                                            webhook_name=SAMPLE_WEBHOOK_NAME)) for event in events]
    return batch_variables(rendered, webhook_id=SAMPLE_WEBHOOK_ID, webhook_name=SAMPLE_WEBHOOK_NAME,
                           payloads=True)
