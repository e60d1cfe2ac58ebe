"""A file of a mail server's records, read whole by its source: what `mailhooks explain
--from SOURCE` asks about, to say why a real record did or did not fire."""

from __future__ import annotations

import io
import json

from mailhooks.ingest import SOURCES
from mailhooks.sources import dsn, kumomta
from mailhooks.sources.pmta import AccountingReader
from mailhooks.sources.postfix import Joiner, parse_journal_entry, parse_syslog_line
from mailhooks.sources.records import Parsed, skip


def parse_file(source: str, data: bytes) -> Parsed:
    """The events (and skipped records) of a whole file as `source` reads it: KumoMTA's
    records (a JSON document, or one a line), PowerMTA's accounting CSV, Postfix's log
    (lines of a file, or `journalctl -o json` entries), or one DSN or ARF message."""
    if source == "dsn":
        return dsn.parse_message(data)
    text = data.decode("utf-8", "replace")
    if source == "kumomta":
        return _kumomta(data, text)
    if source == "pmta":
        reader, parsed = AccountingReader(), Parsed()
        for line in io.StringIO(text, newline=""):
            parsed.extend(reader.feed_line(line))
        parsed.extend(reader.finish())
        return parsed
    if source == "postfix":
        return _postfix(text)
    raise ValueError(f"unknown source {source!r}: one of {', '.join(SOURCES)}")


def _kumomta(data: bytes, text: str) -> Parsed:
    try:
        return kumomta.parse_body(data)
    except ValueError:
        pass  # not one document: one record a line, as KumoMTA's log files are
    parsed = Parsed()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed.extend(kumomta.parse_body(line.encode()))
        except ValueError as error:
            parsed.extend(skip("malformed", f"line {number}: {error}"))
    return parsed


def _postfix(text: str) -> Parsed:
    joiner, parsed = Joiner(), Parsed()
    journal = text.lstrip().startswith("{")
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if journal:
            try:
                line = parse_journal_entry(json.loads(raw))
            except (ValueError, RecursionError):
                parsed.extend(skip("malformed", f"line {number} is no journal entry (JSON)"))
                continue
        else:
            line = parse_syslog_line(raw)
        if line is not None:
            parsed.extend(joiner.feed(line))
    return parsed
