"""[in] A POST /events body → validated events, all or nothing.

Parsing and validation are pure functions (no I/O), so the rules of SPEC §4 are tested
without a server, and the server only maps results to HTTP answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from mailhooks.events import Event

JSON_TYPES: Final = frozenset({"application/json"})
NDJSON_TYPES: Final = frozenset({"application/x-ndjson", "application/jsonl",
                                 "application/x-jsonlines", "application/ndjson"})
MAX_DETAILS: Final = 100
MAX_FIELD_SHOWN: Final = 200


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


_EVENTS: Final = TypeAdapter(list[Event])
# The model's validator itself: BaseModel.model_validate_json wraps it in Python that
# costs about a fifth as much again per event.
_EVENT: Final = Event.__pydantic_validator__


def read_events(body: bytes, content_type: str, max_events: int) -> list[Event]:
    """The events of a body (one object, an array, or NDJSON lines), all valid, or an
    IntakeError: parsing and validation happen in one pass in pydantic's core."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise IntakeError(400, f"body is not UTF-8 (byte {error.start})") from None
    if content_type in NDJSON_TYPES:
        events = _read_lines(body, max_events)
    elif body.lstrip()[:1] == b"[":
        events = _validated(lambda: _EVENTS.validate_json(body), offset=None)
    else:
        events = _validated(lambda: [_EVENT.validate_json(body)], offset=0)
    if not events:
        raise IntakeError(400, "no events in the body")
    if len(events) > max_events:
        raise IntakeError(413, f"too many events: {len(events)}, at most {max_events} per request")
    marked = [Detail(index, "test", "set only by mailhooks on sample events")
              for index, event in enumerate(events) if event.test is not None]
    if marked:
        raise IntakeError(400, f"{len(marked)} invalid event(s); nothing was accepted", marked)
    return events


def _read_lines(body: bytes, max_events: int) -> list[Event]:
    events: list[Event] = []
    details: list[Detail] = []
    lines = [line for line in body.split(b"\n") if line.strip()]
    if len(lines) > max_events:
        raise IntakeError(413, f"too many events: {len(lines)}, at most {max_events} per request")
    for index, line in enumerate(lines):
        try:
            events.append(_EVENT.validate_json(line))
        except ValidationError as error:
            problems = error.errors(include_url=False)
            if problems[0]["type"] == "json_invalid":
                raise IntakeError(
                    400, f"line {index + 1}: invalid JSON: {_json_reason(problems[0])}"
                ) from None
            details.extend(_detail(index, problem) for problem in problems)
    if details:
        raise _invalid(details)
    return events


def _validated(validate: Callable[[], list[Event]], offset: int | None) -> list[Event]:
    try:
        return validate()
    except ValidationError as error:
        problems = error.errors(include_url=False)
    if problems[0]["type"] == "json_invalid":
        raise IntakeError(400, f"invalid JSON: {_json_reason(problems[0])}")
    if offset is None and problems[0]["loc"] == ():
        raise IntakeError(400, "the body is a JSON array of event objects")
    details = []
    for problem in problems:
        index, location = (offset, problem["loc"]) if offset is not None else (
            int(problem["loc"][0]), problem["loc"][1:]
        )
        details.append(_detail(index, {**problem, "loc": location}))
    raise _invalid(details)


def _invalid(details: list[Detail]) -> IntakeError:
    details = list({(detail.index, detail.field): detail for detail in reversed(details)}
                   .values())[::-1]
    count = len({detail.index for detail in details})
    return IntakeError(400, f"{count} invalid event(s); nothing was accepted", details)


def _json_reason(problem: Any) -> str:
    return str(problem["msg"]).removeprefix("Invalid JSON: ")


# pydantic names the branch of a union in the error's location (`metadata.k.bool`);
# a sender needs the field, once.
_UNION_TAGS: Final = frozenset({"str", "int", "float", "bool", "constrained-str",
                                 "constrained-int", "constrained-float", "none"})


def _detail(index: int, problem: Any) -> Detail:
    parts = [str(part) for part in problem["loc"]]
    while len(parts) > 1 and (parts[-1] in _UNION_TAGS or "[" in parts[-1]):
        parts.pop()
    field = ".".join(parts)
    if len(field) > MAX_FIELD_SHOWN:  # a hostile key is not echoed back whole
        field = field[: MAX_FIELD_SHOWN - 3] + "..."
    if problem["type"] == "extra_forbidden":
        message = "unknown field"
    elif problem["type"] == "missing":
        message = "required field is missing"
    elif problem["type"] == "model_type":
        message = "an event is a JSON object"
    else:
        message = str(problem["msg"])
    return Detail(index, field, message)
