"""`mailhooks diff` rendered for people: text for a terminal, Markdown for a pull request.

Secrets newly sent come first in both, then errors, then the webhooks, their effects and
the estimate. Whatever came from a file (names, ids, paths, values) is shown with its
control and bidirectional-formatting characters escaped, and in Markdown inside code
spans, so a name like `</table><script>` or `| a | b |` is text and cannot break a
table. Long lists end with "and N more"; the json format has every item.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any, Final, TypeVar

from mailhooks.events import EVENT_NAMES
from mailhooks.gitops.model import Changed, DestinationCost, Diff, Effect, Estimate, SecretSent, Side
from mailhooks.text import one_line, visible

MAX_ITEMS: Final = 50
MAX_ROWS: Final = 100
MAX_VALUE: Final = 120
RENAME_NOTE: Final = (
    "a new id: its pending deliveries on hosts stay under the old id and are dropped when "
    "the old file goes; metrics and logs change name"
)
ABSENT: Final = "(not set)"
T = TypeVar("T")


def plain(text: str) -> str:
    """One line of text with no control or invisible formatting character (a right-to-left
    override could make `evil.example` read as something else)."""
    shown = visible(text)
    if shown.isascii():
        return shown
    return "".join(f"\\u{ord(char):04x}" if unicodedata.category(char) == "Cf" else char
                   for char in shown)


def value(data: Any) -> str:
    """A field's value in one short line."""
    if data is None:
        return ABSENT
    if isinstance(data, str):
        text = data
    elif isinstance(data, list) and all(isinstance(item, str | int | float) for item in data):
        text = "[" + ", ".join(str(item) for item in data) + "]"
    else:
        text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return plain(one_line(text, MAX_VALUE))


def events_text(events: Sequence[str] | str) -> str:
    if events == "all" or list(events) == list(EVENT_NAMES):
        return "all events"
    return ", ".join(events)


def bounded(items: Sequence[T], limit: int = MAX_ITEMS) -> tuple[Sequence[T], int]:
    """The first `limit` items, and how many more there are."""
    return items[:limit], max(0, len(items) - limit)


def more(count: int) -> str:
    return f"and {count} more (the json format lists every one)"


def side_text(side: Side) -> str:
    if side.kind == "revision":
        return f"{side.given} ({(side.commit or '')[:12]})"
    return f"{side.given} (directory)"


def secret_text(sent: SecretSent) -> str:
    how = "newly sent to" if sent.active else "newly configured for"
    line = f"{sent.reference} {how} {sent.destination} by {sent.webhook} ({sent.file}:{sent.line})"
    if not sent.active:
        line += "; the webhook is inactive: sent once it is active"
    if sent.refused:
        line += f"; refused by the config: {sent.refused}"
    return plain(line)


VERBS: Final = {"starts": "newly receives", "stops": "no longer receives",
                "may start": "may newly receive", "may stop": "may stop receiving"}
MARKS: Final = {"starts": "+", "stops": "-", "may start": "+?", "may stop": "-?"}


def filters_now(effect: Effect) -> str:
    """`filters widened: sending_domain; now unfiltered`, for a may start or may stop."""
    now = f"now {effect.filters}" if effect.filters else "now unfiltered"
    return f"{effect.because}: {', '.join(effect.filters_changed or ())}; {now}"


def effect_text(effect: Effect) -> str:
    verb = VERBS[effect.change]
    if effect.filters_changed:
        return plain(f"{effect.destination} {verb} {events_text(effect.events)} via {effect.webhook} "
                     f"({filters_now(effect)})")
    filters = f" {effect.filters}" if effect.filters else ""
    return plain(f"{effect.destination} {verb} {events_text(effect.events)}{filters} "
                 f"via {effect.webhook} ({effect.because})")


def summary(diff: Diff) -> str:
    counts = [f"{len(diff.added)} added", f"{len(diff.removed)} removed",
              f"{len(diff.renamed)} renamed", f"{len(diff.changed)} changed"]
    return (f"{diff.base.webhooks} → {diff.head.webhooks} webhooks: {', '.join(counts)}; "
            f"{len(diff.secrets_newly_sent)} secret(s) newly sent; {len(diff.errors)} error(s)")


# --- text -------------------------------------------------------------------------------


def text(diff: Diff) -> list[str]:
    """The diff as lines for a terminal; a newly sent secret's line starts with `!`."""
    lines = [plain(f"mailhooks diff: {side_text(diff.base)} → {side_text(diff.head)}")]
    if diff.secrets_newly_sent:
        lines.append("")
        shown, rest = bounded(diff.secrets_newly_sent)
        lines += [f"! SECRET {secret_text(sent)}" for sent in shown]
        lines += [f"! {more(rest)}"] if rest else []
    if diff.errors:
        lines.append("")
        shown_errors, rest = bounded(diff.errors)
        lines += [plain(f"error: {e.file}:{e.line}:{e.column}: {e.message}") for e in shown_errors]
        lines += [f"error: {more(rest)}"] if rest else []
    lines += _text_webhooks(diff)
    if diff.effects or diff.status_changes:
        lines += ["", "Effects:"]
        shown_effects, rest = bounded(diff.effects)
        lines += [f"  {MARKS[e.change]} {effect_text(e)}" for e in shown_effects]
        lines += [f"  {more(rest)}"] if rest else []
        lines += [plain(f"  ~ {s.webhook} turned {'inactive' if s.status == 'inactive' else 'active again'}"
                        f" ({s.file}:{s.line})") for s in diff.status_changes[:MAX_ITEMS]]
    if diff.estimate is not None:
        lines += ["", *_text_estimate(diff.estimate)]
    if diff.base.invalid_files:
        lines += ["", f"note: {diff.base.invalid_files} file(s) of BASE do not validate: left out"]
    lines += ["", summary(diff) if not diff.unchanged or diff.errors else
              f"no webhook changed ({diff.head.webhooks} webhooks); {len(diff.errors)} error(s)"]
    return lines


def _text_webhooks(diff: Diff) -> list[str]:
    lines: list[str] = []
    rows = [
        *(plain(f"+ added {a.id} ({a.file}): {a.name!r}, {events_text(a.events)} → {a.endpoint}"
                + (" [inactive]" if a.status == "inactive" else "")
                + (f"; similar to removed {a.similar_to}" if a.similar_to else ""))
          for a in diff.added),
        *(plain(f"- removed {r.id} ({r.file}): {r.name!r}") for r in diff.removed),
        *(plain(f"> renamed {r.old_id} → {r.new_id} ({r.new_file}): {RENAME_NOTE}")
          for r in diff.renamed),
    ]
    changed = list(_text_changed(diff.changed))
    if rows or changed:
        lines += ["", "Webhooks:"]
        shown, rest = bounded(rows + changed, MAX_ROWS)
        lines += [f"  {row}" for row in shown]
        lines += [f"  {more(rest)}"] if rest else []
    return lines


def _text_changed(changed: Sequence[Changed]) -> Iterator[str]:
    for hook in changed:
        yield plain(f"~ changed {hook.id} ({hook.file}):")
        for change in hook.changes:
            yield plain(f"    {change.field}: {value(change.old)} → {value(change.new)}"
                        f" (line {change.line})")


def _text_estimate(estimate: Estimate) -> list[str]:
    lines = [plain(f"Estimate (deliveries per hour, from {estimate.source} at {estimate.measured_at}):")]
    for cost in estimate.destinations[:MAX_ITEMS]:
        change = [f"+{cost.added_per_hour:.1f}/h"] if cost.added_per_hour else []
        change += [f"-{cost.removed_per_hour:.1f}/h"] if cost.removed_per_hour else []
        bound = f" ({_bound(cost)})" if cost.upper_bound else ""
        lines.append(plain(f"  {cost.destination}: {', '.join(change) or 'none measured'}{bound}"))
    if not estimate.destinations:
        lines.append("  no destination gains or loses events")
    lines += [f"  note: {note}" for note in estimate.notes]
    return lines


def _bound(cost: DestinationCost) -> str:
    """`at most`, and what the counters cannot tell (`unknown: filters widened`)."""
    return "at most" + (f"; unknown: {', '.join(cost.unknown)}" if cost.unknown else "")


# --- markdown ---------------------------------------------------------------------------

_PUNCTUATION: Final = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def md(text: str) -> str:
    """Text as Markdown text: every ASCII punctuation character backslash-escaped (which
    CommonMark allows for each), so nothing in it is markup, HTML or a table's `|`."""
    return "".join(f"\\{char}" if char in _PUNCTUATION else char for char in plain(text))


def code(text: str, *, cell: bool = False) -> str:
    """Text as a code span: literal, whatever it holds. In a table cell a `|` is escaped,
    as GFM requires even inside a span."""
    shown = plain(text)
    run = longest = 0
    for char in shown:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if shown.startswith(("`", " ")) or shown.endswith(("`", " ")) or not shown else ""
    span = f"{fence}{pad}{shown}{pad}{fence}"
    return span.replace("|", "\\|") if cell else span


def markdown(diff: Diff) -> str:
    """The diff as GitHub-flavoured Markdown, for a pull request comment or a job summary."""
    parts = [f"### mailhooks diff: {code(side_text(diff.base))} → {code(side_text(diff.head))}"]
    if diff.secrets_newly_sent:
        shown, rest = bounded(diff.secrets_newly_sent)
        block = ["> [!WARNING]",
                 f"> **{len(diff.secrets_newly_sent)} secret reference(s) newly sent to a destination "
                 "they did not go to before.** Check that each is meant to go there:", ">"]
        block += [f"> - {_md_secret(sent)}" for sent in shown]
        block += [f"> - {more(rest)}"] if rest else []
        parts.append("\n".join(block))
    if diff.errors:
        shown_errors, rest = bounded(diff.errors)
        block = ["> [!CAUTION]", f"> **{len(diff.errors)} error(s) in HEAD:**", ">"]
        block += [f"> - {code(f'{e.file}:{e.line}:{e.column}')}: {md(e.message)}" for e in shown_errors]
        block += [f"> - {more(rest)}"] if rest else []
        parts.append("\n".join(block))
    rows = _md_rows(diff)
    if rows:
        shown_rows, rest = bounded(rows, MAX_ROWS)
        table = ["| Webhook | Change | Field | Before | After |", "|---|---|---|---|---|", *shown_rows]
        parts.append("\n".join(table) + (f"\n\n{more(rest)}" if rest else ""))
    else:
        parts.append("No webhook changed.")
    if diff.effects or diff.status_changes:
        shown_effects, rest = bounded(diff.effects)
        items = [f"- {_md_effect(effect)}" for effect in shown_effects]
        items += [f"- {more(rest)}"] if rest else []
        items += [f"- {code(s.webhook)} turned **{'inactive' if s.status == 'inactive' else 'active again'}**"
                  for s in diff.status_changes[:MAX_ITEMS]]
        parts.append("**Effects**\n\n" + "\n".join(items))
    if diff.estimate is not None:
        parts.append(_md_estimate(diff.estimate))
    # Numbers and words of ours only: no escaping needed.
    notes = [summary(diff)]
    if diff.base.invalid_files:
        notes.append(f"{diff.base.invalid_files} file(s) of BASE do not validate: left out.")
    parts.append(" ".join(notes))
    return "\n\n".join(parts) + "\n"


def _md_secret(sent: SecretSent) -> str:
    how = "newly sent to" if sent.active else "newly configured for"
    line = (f"{code(sent.reference)} {how} {code(sent.destination)} by {code(sent.webhook)} "
            f"({code(f'{sent.file}:{sent.line}')})")
    if not sent.active:
        line += " (the webhook is inactive: sent once it is active)"
    if sent.refused:
        line += f" **refused by the config:** {md(sent.refused)}"
    return line


def _md_rows(diff: Diff) -> list[str]:
    def row(*cells: str) -> str:
        return "| " + " | ".join(cells) + " |"

    rows = []
    for a in diff.added:
        after = (f"{code(a.name, cell=True)}: {code(events_text(a.events), cell=True)} → "
                 f"{code(a.endpoint, cell=True)}" + (" (inactive)" if a.status == "inactive" else ""))
        note = f" (similar to removed {code(a.similar_to, cell=True)})" if a.similar_to else ""
        rows.append(row(code(a.id, cell=True), "added" + note, "", "", after))
    for r in diff.removed:
        rows.append(row(code(r.id, cell=True), "removed", "", code(r.name, cell=True), ""))
    for n in diff.renamed:
        rows.append(row(f"{code(n.old_id, cell=True)} → {code(n.new_id, cell=True)}", "renamed", "",
                        code(n.old_file, cell=True), f"{code(n.new_file, cell=True)}: {RENAME_NOTE}"))
    for c in diff.changed:
        for change in c.changes:
            rows.append(row(code(c.id, cell=True), "changed", code(change.field, cell=True),
                            code(value(change.old), cell=True), code(value(change.new), cell=True)))
    return rows


def _md_effect(effect: Effect) -> str:
    verb = VERBS[effect.change]
    mark = "➕" if effect.change in ("starts", "may start") else "➖"
    head = f"{mark} {code(effect.destination)} {verb} {code(events_text(effect.events))}"
    if effect.filters_changed:
        now = f"now {code(effect.filters)}" if effect.filters else "now unfiltered"
        fields = ", ".join(code(field) for field in effect.filters_changed)
        return f"{head} via {code(effect.webhook)} ({effect.because}: {fields}; {now})"
    filters = f" {code(effect.filters)}" if effect.filters else ""
    return f"{head}{filters} via {code(effect.webhook)} ({effect.because})"


def _md_estimate(estimate: Estimate) -> str:
    lines = [f"**Estimate**: deliveries per hour, from {code(estimate.source)} at "
             f"{code(estimate.measured_at)}", ""]
    if estimate.destinations:
        lines += ["| Destination | Added per hour | Removed per hour |", "|---|---:|---:|"]
        for cost in estimate.destinations[:MAX_ROWS]:
            bound = f" ({_bound(cost)})" if cost.upper_bound else ""
            lines.append(f"| {code(cost.destination, cell=True)} | {cost.added_per_hour:.1f}{bound} "
                         f"| {cost.removed_per_hour:.1f} |")
    else:
        lines.append("No destination gains or loses events.")
    lines += ["", *(f"- {md(note)}" for note in estimate.notes)]
    return "\n".join(lines)
