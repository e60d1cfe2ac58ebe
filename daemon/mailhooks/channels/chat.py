"""What the chat channels (Slack, Teams, Discord, Telegram) share.

- **Text**: a template per channel (the file's, or the channel's default), rendered for one
  event; a blank render falls back to the default, so a message is never empty.
- **Digests**: a batch is one message: a bold line that counts the events by name, then
  one line per event (its text folded onto one line) while they fit, then "… and 37
  more". A burst of 500 bounces is one message, not 500 and a ban.
- **Sizes**: text over the service's limit is cut with `MARKER`, never refused, and never
  inside an escape, an entity or a tag (`Markup`); a cut is logged at info once a minute
  per webhook, without the text.
- **URLs that are secrets**: a webhook URL must lie under its service's base URL, else
  the sender is not built; the message names the reference, never the URL.
- **Answers**: success; 429 holds the destination for the service's wait without spending
  an attempt; another 4xx is permanent (a wrong URL or token, a deleted channel: repeating
  it never helps); 5xx and network errors are retried.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from pydantic import Field
from yarl import URL

from mailhooks import log
from mailhooks.channels.base import ChannelKind, Message, Outcome, WebhookRef
from mailhooks.channels.config import Batch, ChannelConfig, TemplateField, origin
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.http import (
    MAX_RETRY_AFTER,
    Answer,
    HttpSender,
    Request,
    parse_retry_after,
    status_text,
)
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from mailhooks.templates import Mode, TemplateError, Where, compile_template, event_variables
from mailhooks.templates.escaping import ESCAPES
from mailhooks.text import one_line

_log = log.get(__name__)

MARKER: Final = "… (truncated)"
# A digest shows at most this many events, each on a line of at most this many characters.
DIGEST_LINES: Final = 20
DIGEST_LINE_CHARS: Final = 300
# A 429 that says nothing of how long to wait holds the destination this long (seconds).
DEFAULT_HOLD: Final = 5.0
# A webhook's truncations are logged at most once in this many seconds.
TRUNCATION_LOG_INTERVAL: Final = 60.0
MAX_TEMPLATE_CHARS: Final = 10_000
ANSWER_BYTES: Final = 8192
JSON_HEADERS: Final = {"Content-Type": "application/json; charset=utf-8"}


def atoms(*patterns: str) -> re.Pattern[str]:
    """A tokenizer that matches every character: `patterns` (what is never split) first."""
    return re.compile("|".join([*patterns, "."]), re.DOTALL)


@dataclass(frozen=True)
class Markup:
    """How a service's text is written, counted and cut.

    `atoms` never split (an escape, an entity, a `<…>` link); `measure` counts what the
    service limits; `finish(prefix, marker)` ends a cut text (closing what it left open);
    `bold` wraps a digest's first line and `newline` separates lines."""

    mode: Mode
    atoms: re.Pattern[str]
    bold: str = "{}"
    newline: str = "\n"
    measure: Callable[[str], int] = len
    finish: Callable[[str, str], str] | None = None

    def escape(self, text: str) -> str:
        escape = ESCAPES[self.mode]
        return escape(text) if escape is not None else text

    def literal(self, text: str) -> str:
        """Text of ours (not a value) in this markup: only MarkdownV2 needs punctuation
        escaped; elsewhere a backslash could show."""
        return self.escape(text) if self.mode == "telegram_markdown" else text

    @property
    def marker(self) -> str:
        return self.literal(MARKER)


def truncate(text: str, limit: int, markup: Markup) -> tuple[str, bool]:
    """`text` within `limit` (as `markup` measures it), cut at an atom's end with a marker;
    and whether it was cut."""
    if markup.measure(text) <= limit:
        return text, False
    marker = markup.marker
    budget = limit - markup.measure(marker)
    ends = [match.end() for match in markup.atoms.finditer(text)]
    kept, high = 0, len(ends)  # how many atoms are kept: the most whose text fits
    while kept < high:
        middle = (kept + high + 1) // 2
        if markup.measure(text[: ends[middle - 1]]) <= budget:
            kept = middle
        else:
            high = middle - 1
    prefix = text[: ends[kept - 1]] if kept else ""
    return (markup.finish(prefix, marker) if markup.finish else prefix + marker), True


def default_text(markup: Markup) -> str:
    """The default template of a chat message, in the service's markup: `*bounced*:
    recipient@example.com (hard)`, then the campaign and domain, the diagnostic, the link.
    Only MarkdownV2 needs its punctuation escaped in the template's own text."""
    bold_open, bold_close = markup.bold.split("{}")
    line = markup.newline
    text = markup.literal

    return (
        f"{{% if test %}}{text('[test] ')}{{% endif %}}"
        f"{bold_open}{{{{ event }}}}{bold_close}: {{{{ email }}}}"
        f"{{% if bounce_type %}} {text('(')}{{{{ bounce_type }}}}{text(')')}{{% endif %}}"
        f"{{% if complaint_type %}} {text('(')}{{{{ complaint_type }}}}{text(')')}{{% endif %}}"
        f"{{% if broadcast_name or sending_domain %}}{line}{{{{ broadcast_name }}}}"
        "{% if broadcast_name and sending_domain %} {% endif %}"
        "{% if sending_domain %}via {{ sending_domain }}{% endif %}{% endif %}"
        f"{{% if diagnostic %}}{line}{{{{ diagnostic }}}}{{% endif %}}"
        f"{{% if link_url %}}{line}{{{{ link_url }}}}{{% endif %}}"
    )


class ChatTemplate:
    """A text template compiled once per sender: the file's (at `path` below `channel` in
    the webhook's document), or `default`."""

    def __init__(self, source: str | None, default: str, mode: Mode, webhook: WebhookRef,
                 path: tuple[str, ...]) -> None:
        self._webhook = webhook
        try:
            self._default = compile_template(default, where=Where(webhook.id), mode=mode)
            self._template = self._default if source is None else compile_template(
                source, where=webhook.where(("channel", *path)), mode=mode)
        except TemplateError as error:  # checked at load; only a bug gets here
            raise ValueError(f"template: {error}") from None

    def render(self, event: Mapping[str, Any]) -> str:
        """The text for one event; the default's when the template gives only whitespace."""
        variables = self._variables(event)
        text = self._template.render(variables)
        if not text.strip() and self._template is not self._default:
            text = self._default.render(variables)
        return text

    def render_default(self, event: Mapping[str, Any]) -> str:
        """The default's text for one event (it renders for every event)."""
        return self._default.render(self._variables(event))

    def _variables(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return event_variables(event, webhook_id=self._webhook.id, webhook_name=self._webhook.name)


@dataclass(frozen=True)
class Digest:
    """A batch as one message: `title` counts the events (escaped, not bold), `body` has
    a line per event shown and says how many more there were."""

    title: str
    body: str

    def text(self, markup: Markup) -> str:
        return markup.bold.format(self.title) + markup.newline + self.body


def digest(events: Sequence[Mapping[str, Any]], line: Callable[[Mapping[str, Any]], str],
           markup: Markup, limit: int) -> Digest:
    """The digest of `events`: as many lines as fit in `limit`, at most DIGEST_LINES."""
    counts = Counter(str(event.get("event", "event")) for event in events)
    summary = ", ".join(f"{count} {name}" for name, count in counts.most_common())
    title = markup.escape(f"{len(events)} events: {summary}")
    head = markup.bold.format(title) + markup.newline
    lines: list[str] = []
    for event in events[:DIGEST_LINES]:
        folded = " ".join(line(event).split())
        shown, _ = truncate(folded, DIGEST_LINE_CHARS, markup)
        candidate = [*lines, "• " + shown]
        rest = len(events) - len(candidate)
        if markup.measure(head + _body(candidate, rest, markup)) > limit:
            break
        lines = candidate
    return Digest(title, _body(lines, len(events) - len(lines), markup))


def _body(lines: list[str], rest: int, markup: Markup) -> str:
    more = [markup.literal(f"… and {rest} more")] if rest else []
    return markup.newline.join([*lines, *more])


class ChatChannel(ChannelConfig):
    """What every chat channel's config has: a batch goes as one digest message; one
    field that is a secret as a whole (the webhook URL, the bot token); and its
    service's API base URL in the daemon's config (for the destination grants see)."""

    batch: Batch | None = Field(default=None, description="Send a batch as one digest message.")
    # The field holding the secret, and the daemon config's section naming the service.
    reference_field: ClassVar[str] = "url"
    service_section: ClassVar[str]
    service_label: ClassVar[str]
    mode: ClassVar[Mode]
    # The secret's shape, as its sender accepts it ({api_url}: the config section's, or
    # fallback_api_url when it has none).
    stand_in_shape: ClassVar[str]
    fallback_api_url: ClassVar[str] = ""

    def batching(self) -> Batch | None:
        return self.batch

    def secret_texts(self) -> list[str]:
        return [str(getattr(self, self.reference_field))]

    def endpoint(self) -> str:
        return self.service_label

    def destinations(self, settings: Settings) -> list[str]:
        api_url: str | None = getattr(settings, self.service_section).api_url
        return [origin(api_url)] if api_url else []

    def stand_in(self, reference: str, settings: Settings) -> str | None:
        if getattr(self, self.reference_field) != reference:
            return None
        api_url: str = getattr(settings, self.service_section).api_url or self.fallback_api_url
        return self.stand_in_shape.format(api_url=api_url.rstrip("/"))

    def text_fields(self, *fields: tuple[tuple[str | int, ...], str | None, int]) -> list[TemplateField]:
        """TemplateFields for the texts that are set: (path below `channel`, the text, its
        service's size)."""
        return [TemplateField(("channel", *path), source, self.mode, max_chars=limit)
                for path, source, limit in fields if source is not None]


class UrlRefused(ValueError):
    """A webhook URL (a secret) that is not its service's: named by its reference only."""

    def __init__(self, reference: str, message: str) -> None:
        super().__init__(f"{reference}: {message}")
        self.reference = reference


def parsed(reference: str, url: str) -> URL:
    """The URL as given (encoded: sent byte for byte, a signature in its query intact)."""
    try:
        return URL(url, encoded=True)
    except ValueError:
        raise UrlRefused(reference, "is not a valid URL") from None


def under(secrets: Resolved, reference: str, prefix: str, what: str) -> URL:
    """The resolved URL of `reference`, which must start with `prefix`."""
    url = secrets.text(reference).strip()
    if not url.startswith(prefix):
        raise UrlRefused(reference, f"is not {what}: the URL must start with {prefix}")
    return parsed(reference, url)


def hashed(*parts: str) -> str:
    """A short stable name for a secret (a URL, a token): what a rate key may hold."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def encode(body: Any) -> bytes:
    """A JSON body as it is sent: compact, UTF-8."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def seconds(value: Any) -> float | None:
    """A wait a service wrote in its answer (a number of seconds), at most a day."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return min(max(0.0, float(value)), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class Reply:
    """What a service's answer says: delivered or not, why not (its own words), how long
    to wait (a 429's wait, or on a success a rate window that is used up), and whether the
    wait is for every destination of the service (a limit on this host as a whole)."""

    ok: bool
    reason: str | None = None
    wait: float | None = None
    service_wide: bool = False


class ChatSender(HttpSender):
    """A chat channel: one JSON POST per message, its text a template or a digest."""

    service: ClassVar[str]
    answer_limit = ANSWER_BYTES

    def __init__(self, kind: ChannelKind, webhook: WebhookRef, context: ChannelContext, url: URL,
                 timeout: float | None, secrets: Resolved, *, markup: Markup,
                 text: ChatTemplate, limit: int) -> None:
        super().__init__(kind, webhook, context, url, timeout, secrets)
        self.markup = markup
        self.text = text
        self.limit = limit
        self._logged_at = -TRUNCATION_LOG_INTERVAL
        self._unlogged = 0

    # -- what a channel supplies ---------------------------------------------------------

    def payload(self, message: Message) -> dict[str, Any]:
        """The JSON body of `message` (raises TemplateError when a template fails)."""
        raise NotImplementedError

    def reply(self, answer: Answer) -> Reply:
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------

    def line(self, event: Mapping[str, Any]) -> str:
        """One event's text as a digest shows it (folded onto one line there)."""
        return self.text.render(event)

    def digest(self, message: Message, limit: int) -> Digest | None:
        """The digest of a batch of more than one event, else None. An event whose
        template fails is shown with the default text (and the failure logged once for
        the digest): one odd event must not fail the message of all the others."""
        if len(message.events) < 2:
            return None
        failures: list[TemplateError] = []

        def line(event: Mapping[str, Any]) -> str:
            try:
                return self.line(event)
            except TemplateError as error:
                failures.append(error)
                return self.text.render_default(event)

        found = digest(message.events, line, self.markup, limit)
        if failures:
            _log.warning("digest_line_template_failed", webhook=self.webhook_id, channel=self.kind.type,
                         lines=len(failures), error=one_line(self.scrub(str(failures[0])), 200),
                         hint="those events are shown with the default text")
        return found

    def message_text(self, message: Message) -> str:
        """The message's text: one event's, or a batch's digest; within the limit."""
        found = self.digest(message, self.limit)
        text = found.text(self.markup) if found else self.text.render(message.events[0])
        return self.fit(text, self.limit, "text")

    def fit(self, text: str, limit: int, field: str) -> str:
        cut, was_cut = truncate(text, limit, self.markup)
        if was_cut:
            self.truncated(field, self.markup.measure(text), limit)
        return cut

    def truncated(self, field: str, length: int, limit: int) -> None:
        """Log a cut: once a minute per webhook, with how many went unlogged, never the text."""
        now = time.monotonic()
        if now - self._logged_at < TRUNCATION_LOG_INTERVAL:
            self._unlogged += 1
            return
        _log.info("message_truncated", webhook=self.webhook_id, channel=self.kind.type,
                  field=field, length=length, limit=limit, also_truncated=self._unlogged)
        self._logged_at, self._unlogged = now, 0

    def build(self, message: Message) -> Request | Outcome:
        if not message.events:
            return Outcome(ok=False, retry=False, error=f"{self.service}: the message has no event")
        try:
            body = self.payload(message)
        except TemplateError as error:
            # The same event fails the same way every time: retrying never helps.
            return Outcome(ok=False, retry=False,
                           error=one_line(self.scrub(f"{self.service}: the template failed: {error}")))
        return Request(body=encode(body), headers=JSON_HEADERS)

    def unanswered(self, reason: str, status: int | None, duration_ms: float) -> Outcome:
        return Outcome(ok=False, retry=True, status=status, error=f"{self.service}: {reason}",
                       duration_ms=duration_ms)

    def classify(self, answer: Answer, duration_ms: float) -> Outcome:
        status, shown, now = answer.status, self.excerpt(answer), time.time()
        reply = self.reply(answer)
        if reply.ok:
            hold = now + reply.wait if reply.wait else None
            return Outcome(ok=True, status=status, hold_until=hold, body_excerpt=shown,
                           duration_ms=duration_ms)
        reason = one_line(self.scrub(reply.reason or status_text(status)), 200)
        if status == 429:
            wait = reply.wait
            if wait is None:
                wait = parse_retry_after(answer.headers.get("Retry-After"))
            wait = DEFAULT_HOLD if wait is None else wait
            held = (f"every {self.service} destination of this host; holding them" if reply.service_wide
                    else "this destination; holding it")
            return Outcome(ok=False, retry=True, status=status, hold_until=now + wait,
                           hold_service=reply.service_wide,
                           error=f"{self.service} is rate limiting {held} for {wait:g}s",
                           body_excerpt=shown, duration_ms=duration_ms)
        if 400 <= status < 500 and status not in (408, 425):
            said = f" ({status_text(status)}): {reason}" if reply.reason else f": {reason}"
            return Outcome(ok=False, retry=False, status=status,
                           error=f"{self.service} refused the message{said}",
                           body_excerpt=shown, duration_ms=duration_ms)
        return Outcome(ok=False, retry=True, status=status, error=f"{self.service}: {reason}",
                       retry_after=parse_retry_after(answer.headers.get("Retry-After")),
                       body_excerpt=shown, duration_ms=duration_ms)
