"""A line of Postfix's log, from a file or from the journal, as a `LogLine`: its time in
UTC, its host, its syslog tag, its process id and its text. The formats are in the doc
of `mailhooks.sources.postfix`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

from mailhooks.sources.fields import one_line

MAX_LINE_CHARS: Final = 64 * 1024
MAX_HOST_CHARS: Final = 200

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MONTHS: Final = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}

# `Mar  1 12:34:56 host tag: …` (syslog) and `Mar 01 12:34:56 host tag: …` (maillog_file).
_TRADITIONAL: Final = re.compile(
    r"(?P<month>[A-Z][a-z]{2})[ \t]+(?P<day>\d{1,2})[ \t]+(?P<clock>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<fraction>\d{1,9}))?[ \t]+(?P<host>\S+)[ \t]+(?P<tag>.*)", re.DOTALL)
# `2024-03-01T12:34:56.123456+01:00 host tag: …`
_RFC3339: Final = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<clock>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<offset>[Zz]|[+-]\d{2}:?\d{2})?[ \t]+(?P<host>\S+)[ \t]+(?P<tag>.*)", re.DOTALL)
# `postfix/smtp[123]: message`
_TAG: Final = re.compile(r"(?P<program>[^\s\[\]:]{1,200})(?:\[(?P<pid>\d{1,10})\])?: (?P<message>.*)",
                         re.DOTALL)


@dataclass(frozen=True)
class LogLine:
    """One log line, from a file or the journal: the time (aware, in UTC), the host that
    logged it, its syslog tag (`postfix/smtp`), the process id and the text."""

    timestamp: datetime
    host: str
    program: str
    pid: int | None
    message: str


def _utc(moment: datetime, tz: tzinfo | None) -> datetime | None:
    """`moment` in UTC; a moment without an offset is taken in `tz` (None: this machine's
    zone). None when the calendar cannot hold it."""
    try:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz) if tz is not None else moment.astimezone()
        return moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _micro(fraction: str | None) -> int:
    return int((fraction or "0")[:6].ljust(6, "0"))


def _traditional_time(match: re.Match[str], year: int | None, now: datetime | None,
                      tz: tzinfo | None) -> datetime | None:
    month = _MONTHS.get(match["month"])
    if month is None:
        return None
    try:
        hour, minute, second = (int(part) for part in match["clock"].split(":"))
        day, micro = int(match["day"]), _micro(match["fraction"])
    except ValueError:
        return None
    latest: datetime | None = None
    if year is not None:
        candidates: Iterable[int] = (year,)
    else:
        reference = now if now is not None else datetime.now(UTC)
        reference = reference if reference.tzinfo else reference.replace(tzinfo=UTC)
        latest = reference + timedelta(days=1)
        # The latest year that does not put the line over a day after `now`; a 29th of
        # February looks further back for a leap year.
        candidates = range(reference.year + 1, reference.year - 8, -1)
    for candidate in candidates:
        try:
            local = datetime(candidate, month, day, hour, minute, second, micro)
        except ValueError:
            continue
        moment = _utc(local, tz)
        if moment is not None and (latest is None or moment <= latest):
            return moment
    return None


def _rfc3339_time(match: re.Match[str], tz: tzinfo | None) -> datetime | None:
    offset = match["offset"] or ""
    if offset in ("Z", "z"):
        offset = "+00:00"
    elif offset and ":" not in offset:
        offset = f"{offset[:3]}:{offset[3:]}"
    text = f"{match['date']}T{match['clock']}.{_micro(match['fraction']):06d}{offset}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return _utc(moment, tz)


def _split_tag(timestamp: datetime | None, host: str, tag: str) -> LogLine | None:
    if timestamp is None:
        return None
    match = _TAG.fullmatch(tag)
    if match is None:
        return None
    pid = match["pid"]
    return LogLine(timestamp=timestamp, host=one_line(host, MAX_HOST_CHARS), program=match["program"],
                   pid=int(pid) if pid else None, message=match["message"])


def parse_syslog_line(text: str, year: int | None = None, *, now: datetime | None = None,
                      tz: tzinfo | None = None) -> LogLine | None:
    """One line of a log file (any of the three formats) as a `LogLine`; None when it is
    no syslog line (or longer than 64 KiB). `year` pins the year of a line that has none;
    otherwise it is inferred from `now` (default: the clock). `tz` is the zone of a time
    without an offset (default: this machine's)."""
    if not isinstance(text, str) or len(text) > MAX_LINE_CHARS:
        return None
    text = text.rstrip("\r\n")
    match = _RFC3339.fullmatch(text)
    if match is not None:
        return _split_tag(_rfc3339_time(match, tz), match["host"], match["tag"])
    match = _TRADITIONAL.fullmatch(text)
    if match is not None:
        return _split_tag(_traditional_time(match, year, now, tz), match["host"], match["tag"])
    return None


def _journal_text(value: Any) -> str | None:
    """A journal field as text: `journalctl -o json` writes a field that is no valid
    UTF-8 as an array of byte values."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) <= MAX_LINE_CHARS and all(
            isinstance(byte, int) and not isinstance(byte, bool) and 0 <= byte <= 255 for byte in value):
        return bytes(value).decode("utf-8", "replace")
    return None


def parse_journal_entry(entry: Mapping[str, Any]) -> LogLine | None:
    """One object of `journalctl -o json` as a `LogLine`; None when it lacks the time, the
    tag or the message, or they are not what the journal writes."""
    if not isinstance(entry, Mapping):
        return None
    program = _journal_text(entry.get("SYSLOG_IDENTIFIER"))
    message = _journal_text(entry.get("MESSAGE"))
    stamp = entry.get("__REALTIME_TIMESTAMP")
    if not program or message is None or not isinstance(stamp, str | int) or isinstance(stamp, bool):
        return None
    try:
        timestamp = _EPOCH + timedelta(microseconds=int(stamp))
    except (ValueError, OverflowError):
        return None
    pid: int | None = None
    for name in ("SYSLOG_PID", "_PID"):
        value = _journal_text(entry.get(name))
        if value is not None and value.isascii() and value.isdigit() and len(value) <= 10:
            pid = int(value)
            break
    host = _journal_text(entry.get("_HOSTNAME")) or ""
    return LogLine(timestamp=timestamp, host=one_line(host, MAX_HOST_CHARS),
                   program=one_line(program, MAX_HOST_CHARS), pid=pid,
                   message=message[:MAX_LINE_CHARS].rstrip("\r\n"))
