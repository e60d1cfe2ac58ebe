"""A webhook's templates at load: compiled with their place in the file, and rendered
against a sample of each event the webhook selects (SPEC §5), so a broken template fails
`validate` (and the pull request) at its `path:line:col`, not a delivery at 3 a.m."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mailhooks.channels.config import TemplateField
from mailhooks.documents.positions import Position
from mailhooks.documents.yaml import Document
from mailhooks.events import EVENT_NAMES, EventName
from mailhooks.templates import (
    PayloadTemplate,
    Template,
    TemplateError,
    Where,
    check,
    compile_payload,
    compile_template,
    sample_context,
)
from mailhooks.webhooks.models import Webhook


def template_problems(document: Document, raw: str, webhook: Webhook, file: str,
                      places: dict[tuple[str | int, ...], tuple[int, int]] | None = None,
                      ) -> Iterator[tuple[Position, str]]:
    """Every problem of the webhook's templates, as (position, message); `places` gets
    where each template starts, for the daemon's render errors to point into the file."""
    selected: list[EventName] = list(EVENT_NAMES) if webhook.events == "all" else list(webhook.events)
    compiled_at: dict[tuple[str | int, ...], Template | PayloadTemplate] = {}
    for field in webhook.channel.templates():
        try:
            compiled = compile_field(field, document, raw, file, places)
        except TemplateError as refused:
            yield Position(refused.line, refused.column), refused.message
            continue
        compiled_at[field.path] = compiled
        item: PayloadTemplate | None = None
        if field.items is not None:
            found = compiled_at.get(field.items)
            if not isinstance(found, PayloadTemplate):
                continue  # the per-event payload did not compile: its error is said already
            item = found
        errors = check(compiled, selected, per_batch=field.per_batch, item=item)
        for error in errors:
            yield Position(error.line, error.column), error.message
        if not errors and field.max_chars is not None and isinstance(compiled, Template):
            yield from _over_limit(compiled, selected, field.max_chars, field.measure)


def _over_limit(template: Template, selected: list[EventName], limit: int,
                measure: Callable[[str], int]) -> Iterator[tuple[Position, str]]:
    """The first sample whose text is over the service's limit, as the service counts it:
    it would be cut when sent."""
    for name in selected:
        length = measure(template.render(sample_context(name)))
        if length > limit:
            yield (Position(template.where.line, template.where.column),
                   f"the text of a sample {name!r} event is {length} characters, over the {limit} "
                   "the service takes; it would be cut when sent")
            return


def compile_field(field: TemplateField, document: Document | None, raw: str, file: str,
                  places: dict[tuple[str | int, ...], tuple[int, int]] | None = None,
                  ) -> Template | PayloadTemplate:
    """The field compiled; with a document, every error points into the file (and
    `places` records where each of its templates starts)."""
    def where(path: tuple[str | int, ...]) -> Where:
        if document is None:
            return Where(file)
        full = (*field.path, *path)
        found = _content_start(document, raw, full, file)
        if places is not None:
            places[full] = (found.line, found.column)
        return found

    if field.payload:
        return compile_payload(field.source, positions=where, mode=field.mode)
    return compile_template(str(field.source), where=where(()), mode=field.mode)


def _content_start(document: Document, raw: str, path: tuple[str | int, ...], file: str) -> Where:
    """Where a scalar's first character is: after the quote of a quoted scalar, on the
    line after a block scalar's `|` or `>` (at its indentation)."""
    position = document.position(path)
    lines = raw.splitlines()
    if not 0 < position.line <= len(lines):
        return Where(file, position.line, position.column)
    line = lines[position.line - 1]
    marker = line[position.column - 1:position.column]
    if marker in ("'", '"'):
        return Where(file, position.line, position.column + 1)
    if marker in ("|", ">") and position.line < len(lines):
        following = lines[position.line]
        return Where(file, position.line + 1, len(following) - len(following.lstrip(" ")) + 1)
    return Where(file, position.line, position.column)
