"""A POSTed body of KumoMTA log records: one object, an array, or NDJSON lines."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from mailhooks.sources import fields as f
from mailhooks.sources.fields import MAX_DETAIL
from mailhooks.sources.kumomta.record import parse_record
from mailhooks.sources.kumomta.values import json_type
from mailhooks.sources.records import Parsed, skipped


class TooMany(ValueError):
    """More records in one body than a request may carry (`limits.max_batch_events`)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"too many records: {count}")
        self.count = count


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("body is nested too deeply to be a KumoMTA log record") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise ValueError(f"body is not JSON: {f.one_line(str(error), MAX_DETAIL)}") from None


def parse_body(body: bytes, max_records: int | None = None) -> Parsed:
    """The records of one POSTed body. Raises ValueError (one line) only when the body is not
    JSON, or is JSON but neither an object nor an array, and TooMany when it holds more than
    `max_records` (checked before any record is mapped); a bad record inside is a Skipped."""
    data = _decode(body)
    if not isinstance(data, dict | list):
        raise ValueError(f"body is a JSON {json_type(data)}, not a log record or an array of them")
    if max_records is not None and isinstance(data, list) and len(data) > max_records:
        raise TooMany(len(data))
    return parse_records(data)


def parse_lines(body: bytes, max_records: int | None = None) -> Parsed:
    """NDJSON: one record per line (blank lines ignored), as a log shipper sends them. A
    line that is not JSON is a Skipped, never the whole body's refusal."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    if max_records is not None and len(lines) > max_records:
        raise TooMany(len(lines))
    parsed = Parsed()
    for number, line in enumerate(lines, 1):
        try:
            data = _decode(line)
        except ValueError as error:
            parsed.skipped.append(skipped("malformed", f"line {number}: {error}"))
            continue
        _parse_value(data, parsed)
    return parsed


def parse_records(data: Any) -> Parsed:
    """Events from one decoded JSON value: a log record, or a list of them."""
    parsed = Parsed()
    _parse_value(data, parsed)
    return parsed


def _parse_value(data: Any, parsed: Parsed) -> None:
    if not isinstance(data, list):
        if isinstance(data, dict):
            parse_record(data, parsed)
        else:
            detail = f"the body is a JSON {json_type(data)}, not an object"
            parsed.skipped.append(skipped("malformed", detail))
        return
    for index, record in enumerate(data):
        if isinstance(record, dict):
            parse_record(record, parsed)
        else:
            detail = f"record {index} is a JSON {json_type(record)}, not an object"
            parsed.skipped.append(skipped("malformed", detail))



def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")
