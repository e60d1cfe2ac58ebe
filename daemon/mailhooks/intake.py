"""[in] A POST /events body → validated events, all or nothing.

Parsing and validation are pure functions (no I/O), so the rules of SPEC §4 are tested
without a server, and the server only maps results to HTTP answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from mailhooks.events import Event

NDJSON_TYPES: Final = frozenset({"application/x-ndjson", "application/jsonl",
                                 "application/x-jsonlines", "application/ndjson"})
MAX_DETAILS: Final = 100


@dataclass(frozen=True)
class Detail:
    index: int
    field: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class IntakeError(Exception):
    """The whole batch is refused: `status` is the HTTP answer, `details` say why."""

    def __init__(self, status: int, message: str, details: list[Detail] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.details:
            body["details"] = [detail.as_json() for detail in self.details[:MAX_DETAILS]]
            if len(self.details) > MAX_DETAILS:
                body["details_omitted"] = len(self.details) - MAX_DETAILS
        return body


def parse_body(body: bytes, content_type: str, max_events: int) -> list[Any]:
    """The JSON values of a body: one object, an array, or NDJSON lines."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise IntakeError(400, f"body is not UTF-8 (byte {error.start})") from None
    if content_type in NDJSON_TYPES:
        items: list[Any] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            if len(items) >= max_events:
                raise IntakeError(413, f"too many events: more than {max_events} in one request")
            try:
                items.append(json.loads(line))
            except (json.JSONDecodeError, RecursionError) as error:
                raise IntakeError(400, f"line {number}: invalid JSON: {_why(error)}") from None
        return items
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise IntakeError(400, f"invalid JSON: {_why(error)}") from None
    items = value if isinstance(value, list) else [value]
    if len(items) > max_events:
        raise IntakeError(413, f"too many events: {len(items)}, at most {max_events} per request")
    return items


def _why(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    return "nested too deeply"


def validate(items: list[Any]) -> list[Event]:
    """Every item as an Event, or an IntakeError naming each bad field."""
    if not items:
        raise IntakeError(400, "no events in the body")
    events: list[Event] = []
    details: list[Detail] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            details.append(Detail(index, "", f"an event is a JSON object, not {_kind(item)}"))
            continue
        if "test" in item:
            details.append(Detail(index, "test", "set only by mailhooks on sample events"))
            continue
        try:
            events.append(Event.model_validate(item))
        except ValidationError as error:
            details.extend(
                Detail(index, ".".join(str(part) for part in problem["loc"]), _message(problem))
                for problem in error.errors(include_url=False)
            )
    if details:
        count = len({detail.index for detail in details})
        raise IntakeError(400, f"{count} invalid event(s); nothing was accepted", details)
    return events


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _message(problem: Any) -> str:
    if problem["type"] == "extra_forbidden":
        return "unknown field"
    if problem["type"] == "missing":
        return "required field is missing"
    return str(problem["msg"])
