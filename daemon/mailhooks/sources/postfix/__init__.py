"""[in] Postfix's log → events (SPEC §8): what `mailhooks ingest postfix` reads.

Postfix writes one log line per step of a message's way, each tagged with the message's
queue id; no single line says everything about a delivery. `Joiner` joins them: it
remembers what cleanup and qmgr said about a queue id (its Message-ID, its sender, the
recipients still deferred) and turns each outcome line into an event.

Input: two shapes, one parser
-----------------------------
Every line becomes a `LogLine(timestamp, host, program, pid, message)` first, so a file
and the journal share the joiner:

* `parse_syslog_line` splits a line of a file. It takes the three formats Postfix's lines
  are written in:

  - syslog's traditional format, `Mar  1 12:34:56 mx1 postfix/smtp[123]: …` (the day
    padded with a space; rsyslog's `RSYSLOG_TraditionalFileFormat`, syslog-ng's default,
    RHEL's `/var/log/maillog`);
  - Postfix's own `maillog_file` (postlogd(8), Postfix 3.4 and later),
    `Mar 01 12:34:56 mx1 postfix/smtp[123]: …` (the day padded with a zero, the host
    name cut at its first dot);
  - RFC 3339, `2024-03-01T12:34:56.123456+01:00 mx1 postfix/smtp[123]: …` (rsyslog's
    default `RSYSLOG_FileFormat`, as Debian 12 writes `/var/log/mail.log`).

  The first two carry neither a year nor a zone: the time is taken in `tz` (default: this
  machine's zone, with its daylight saving rules), and the year is the latest one that
  does not put the line more than a day after `now`, unless `year` is given. So the same
  file read in another year, or on a machine in another zone, gives other timestamps and
  so other event ids; give `year` and `tz` to pin them.
* `parse_journal_entry` takes one object of `journalctl -o json`: `MESSAGE` (a string,
  or an array of bytes when it is not UTF-8), `SYSLOG_IDENTIFIER` (`postfix/smtp`),
  `SYSLOG_PID` or `_PID`, `__REALTIME_TIMESTAMP` (microseconds) and `_HOSTNAME`.

A line is Postfix's when its program has a `/` (`postfix/smtp`, `postfix-out/smtp`,
`postfix/submission/smtpd`: Postfix tags every line `syslog_name/process`, and
`syslog_name` is anyone's to choose); other programs' lines are ignored.

What becomes an event
---------------------
=========================================================  ===============================
line                                                        event
=========================================================  ===============================
`QID: to=<…>, relay=…, dsn=2.0.0, status=sent (…)`          `delivered`
`QID: to=<…>, …, status=deferred (…)` (also SOFTBOUNCE)     `delayed`
`QID: to=<…>, …, status=bounced (…)`                        `bounced`, `bounce_type` hard
                                                            for a 5.X.X status, else soft
`QID: from=<…>, status=expired, returned to sender` (qmgr;  one `bounced` with
also `force-expired`, from `postsuper -e`)                  `bounce_type` expired for each
                                                            recipient still deferred
`NOQUEUE: reject: RCPT from …: 554 5.7.1 …; from=<…>        `rejected`
to=<…> proto=… helo=<…>` (smtpd, postscreen; also a
queue id's `reject:` and `milter-reject:` from smtpd
and cleanup)
=========================================================  ===============================

The delivery agents (smtp, lmtp, local, virtual, pipe, error, retry, discard) and qmgr
(for "delivery temporarily suspended") all log the `to=` form, so the form decides, not
the program. Address verification probes (`status=deliverable`/`undeliverable`) and
`reject_warning:` dry runs are not events.

Fields:

* `email` is `to=`, the address Postfix delivered to, always fully qualified; `orig_to=`
  (the address before aliases and virtual maps rewrote it, sometimes a bare local part
  such as `postmaster`) goes to `metadata.orig_to` when it differs. A DSN's
  `Final-Recipient` is the same address, so both sources agree.
* `message_id` is cleanup's `message-id=<…>` without the angle brackets; when that line
  was not seen (logged before the reader started, or empty) it is `QUEUEID@HOST`, stable
  for the message. A `NOQUEUE` reject has no queue id: its id is `noqueue-HASH@HOST`, a
  hash of the line's host, process, time, sender and recipient.
* `sending_domain` is the domain of qmgr's (or the reject's) `from=`, the envelope
  sender. Messages whose sender is empty (`from=<>`: Postfix's own bounce and delay
  notices, and auto-replies) give no events, only a `Skipped` of kind `null-sender`:
  they are not the operator's mail, and their original's bounce was already reported
  (`Joiner(skip_null_sender=False)` turns them into events all the same).
* `sending_node` is the host name of the line (the journal's `_HOSTNAME`).
* `dsn_status` is `dsn=`; `diagnostic` is the text in parentheses after the status, as
  Postfix wrote it (`host mx[192.0.2.1] said: 550 5.1.1 <…>: … (in reply to RCPT TO
  command)`); `smtp_code` is the reply code at its start or after `said:`.
* `metadata`: `queue_id`, `relay`, `orig_to`, and for rejects `client` and `stage`.
* `event_id` is `derive_event_id("postfix", host, queue id, recipient, status, time…)`:
  the same lines give the same ids, so reading them twice delivers nothing twice.

Each hop Postfix makes is a delivery: with a content filter (amavis on
127.0.0.1:10024, say), a message is `delivered` to the filter and, under the new queue id
the filter's reinjection gets, `delivered` again to its recipient; `metadata.relay` tells
the two apart.

A line that looks like an outcome (a queue id, then `status=`) but cannot be read gives a
`Skipped` of kind `unparsed`; an unknown status word one of kind `status:unknown`
(`SKIP_KINDS` lists every kind). Every other line (connect, disconnect, TLS,
warnings…) is ignored quietly. No input raises.

Memory
------
What the joiner remembers of a queue id (its Message-ID, sender and deferred recipients)
is forgotten at qmgr's `removed`; when no line has named it for `max_age` (7 days by
default, longer than Postfix's default `maximal_queue_lifetime` of 5 days; measured in
log time, the time of the line being read, not on the clock, so replaying a file behaves
as reading it live did); or, the least recently named first, when more than
`max_messages` (20,000 by default: about 22 MB in memory, and 7 MB of state, when each
has a deferred recipient) are remembered. A message remembers at most
1,000 deferred recipients. `state()` is a JSON document of all of it, and
`Joiner.restore(state)` takes it back, so `ingest postfix --follow` keeps it beside its
cursor in the state directory across restarts (the cursor is the caller's: a journal
cursor or a file offset).

The package: `lines` reads a line of a file or of the journal, `outcomes` the text of a
line after its queue id, `joiner` joins them into events, `state` is the joiner's memory.
"""

from __future__ import annotations

from typing import Final

from mailhooks.sources.postfix.joiner import (
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_MESSAGES,
    MAX_PENDING_RECIPIENTS,
    SOURCE,
    Joiner,
    parse_lines,
)
from mailhooks.sources.postfix.lines import MAX_LINE_CHARS, LogLine, parse_journal_entry, parse_syslog_line
from mailhooks.sources.postfix.state import STATE_VERSION

# Every kind of Skipped this source gives: a short, stable set, counted and logged once each.
SKIP_KINDS: Final = frozenset({
    "unparsed", "status:unknown", "null-sender", "expired:unknown-recipients", "reject:no-recipient",
    "invalid-event", "internal-error",
})

__all__ = [
    "DEFAULT_MAX_AGE", "DEFAULT_MAX_MESSAGES", "MAX_LINE_CHARS", "MAX_PENDING_RECIPIENTS", "SKIP_KINDS",
    "SOURCE", "STATE_VERSION", "Joiner", "LogLine", "parse_journal_entry", "parse_lines", "parse_syslog_line",
]
