"""`mailhooks diff --format github`: workflow-command annotations at the changed lines,
and the Markdown report for the job summary (`$GITHUB_STEP_SUMMARY`).

A secret newly sent is a `::warning` at the line of its reference, an `::error` when the
config's grants refuse it; errors in HEAD are `::error`s; the rest are `::notice`s.
Paths are relative to the repository root, as GitHub places annotations. GitHub shows a
handful of each kind per step, so the most important come first and the rest are
counted in one last notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from mailhooks.gitops.model import Diff
from mailhooks.gitops.report import RENAME_NOTE, effect_text, events_text, plain, secret_text, value

MAX_ANNOTATIONS: Final = 50
Level = Literal["error", "warning", "notice"]


def escape_data(text: str) -> str:
    """A message, as GitHub's toolkit escapes it (`escapeData`)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property (file, title), as GitHub's toolkit escapes it (`escapeProperty`)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


@dataclass(frozen=True)
class Annotation:
    level: Level
    title: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def command(self) -> str:
        properties = []
        if self.file is not None:
            properties.append(f"file={escape_property(plain(self.file))}")
            if self.line is not None:
                properties.append(f"line={self.line}")
            if self.column is not None:
                properties.append(f"col={self.column}")
        properties.append(f"title={escape_property(plain(self.title))}")
        return f"::{self.level} {','.join(properties)}::{escape_data(plain(self.message))}"


def all_annotations(diff: Diff) -> list[Annotation]:
    """Every annotation of the diff, the most important first."""
    found: list[Annotation] = []
    shown_as_secret: set[tuple[str, int, str]] = set()
    for sent in diff.secrets_newly_sent:
        level: Level = "error" if sent.refused else "warning"
        found.append(Annotation(level, "mailhooks diff: secret newly sent", f"SECRET {secret_text(sent)}",
                                sent.file, sent.line))
        if sent.refused:
            shown_as_secret.add((sent.file, sent.line, sent.refused))
    for error in diff.errors:
        if (error.file, error.line, error.message) not in shown_as_secret:
            found.append(Annotation("error", "mailhooks diff", error.message, error.file, error.line,
                                    error.column))
    for added in diff.added:
        found.append(Annotation("notice", "mailhooks diff: webhook added",
                                f"{added.id} added: {events_text(added.events)} → {added.endpoint}",
                                added.file, 1))
    for renamed in diff.renamed:
        found.append(Annotation("notice", "mailhooks diff: webhook renamed",
                                f"{renamed.old_id} → {renamed.new_id}: {RENAME_NOTE}", renamed.new_file, 1))
    for changed in diff.changed:
        for change in changed.changes:
            found.append(Annotation(
                "notice", "mailhooks diff: webhook changed",
                f"{changed.id}: {change.field}: {value(change.old)} → {value(change.new)}",
                changed.file, change.line,
            ))
    for status in diff.status_changes:
        found.append(Annotation("notice", "mailhooks diff: status",
                                f"{status.webhook} turned {status.status}", status.file, status.line))
    for effect in diff.effects:
        # Annotations live in HEAD's files: a removed webhook's go to the job summary only.
        if effect.line is not None:
            found.append(Annotation("notice", "mailhooks diff: effect", effect_text(effect),
                                    effect.file, effect.line))
    for removed in diff.removed:
        found.append(Annotation("notice", "mailhooks diff: webhook removed",
                                f"{removed.id} removed ({removed.file})"))
    return found


def commands(diff: Diff) -> list[str]:
    """The annotations as workflow commands, at most MAX_ANNOTATIONS, then a count."""
    found = all_annotations(diff)
    lines = [annotation.command() for annotation in found[:MAX_ANNOTATIONS]]
    if len(found) > MAX_ANNOTATIONS:
        rest = len(found) - MAX_ANNOTATIONS
        lines.append(Annotation("notice", "mailhooks diff",
                                f"and {rest} more annotations: see the job summary").command())
    return lines
