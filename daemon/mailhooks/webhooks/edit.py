"""Changing webhook files from the command line: the logic, with no printing or prompting.

`mailhooks new`, `enable`/`disable`, `edit` and `delete` share it: finding the file of an
id, flipping `status` without touching any other byte, rendering a new commented file,
checking a candidate file as `validate` would, and the few git commands they need.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from mailhooks.documents.check import read_limited
from mailhooks.documents.positions import START, Position, Problem
from mailhooks.documents.yaml import Document, YamlError, decode, parse
from mailhooks.events import EVENT_NAMES, FILTER_FIELDS
from mailhooks.reasons import os_reason
from mailhooks.secrets import HOW_TO_REFERENCE, is_reference
from mailhooks.settings import Settings
from mailhooks.webhooks.ids import SUFFIXES, BadId
from mailhooks.webhooks.ids import parse_id as _parse_id
from mailhooks.webhooks.load import LoadResult, check_bytes, name_position

Status = Literal["active", "inactive"]
PUBLIC_SCHEMA: Final = "https://mailhooks.dev/schema/webhook.schema.json"


class EditError(Exception):
    """A change that cannot be made; `position` points into the file when it is known."""

    def __init__(self, message: str, position: Position | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


# --- finding a webhook's file -------------------------------------------------------------


def parse_id(text: str) -> str:
    """A webhook id as commands take it (see `ids.parse_id`), or an EditError."""
    try:
        return _parse_id(text)
    except BadId as error:
        raise EditError(str(error)) from None


def webhook_path(directory: Path, identifier: str) -> Path:
    """The one file of `identifier` below `directory` (`.yaml` or `.yml`)."""
    identifier = parse_id(identifier)
    found = [path for path in candidate_paths(directory, identifier) if path.is_file()]
    if not found:
        raise EditError(f"no webhook {identifier!r} in {directory}")
    if len(found) > 1:
        raise EditError(f"webhook {identifier!r} has two files: {found[0]} and {found[1]}")
    return found[0]


def candidate_paths(directory: Path, identifier: str) -> list[Path]:
    return [directory / f"{identifier}{suffix}" for suffix in SUFFIXES]


# --- enable / disable: a byte splice -------------------------------------------------------


def set_status(raw: bytes, status: Status) -> bytes | None:
    """The file with `status` set, or None when the webhook already has that status.

    Only the bytes of the `status` value change (or one line is added after `name:`), so
    comments, order, quoting, anchors and line endings stay exactly as they were. The
    composer's marks give each node's exact character range, finer than ruamel's line/col.
    """
    bom = raw.startswith(b"\xef\xbb\xbf")
    text = decode(raw)
    document = parse(text)
    if not isinstance(document.data, dict):
        raise EditError("expected a mapping of keys at the top of the file", START)
    if document.data.get("status", "active") == status:
        return None
    top = YAML(typ="rt", pure=True).compose(text)
    assert isinstance(top, MappingNode)  # parse() above has seen a mapping
    value = _value_node(top, "status")
    changed = (
        _insert_status(text, top, status) if value is None
        else _replace_value(text, value, status)
    )
    _verify(document, changed, status)
    return (b"\xef\xbb\xbf" if bom else b"") + changed.encode("utf-8")


def _value_node(mapping: MappingNode, key: str) -> Node | None:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            if value_node.start_mark.index < key_node.end_mark.index:
                raise EditError(
                    f"{key} is an alias of a value written earlier; edit it by hand",
                    _position(value_node),
                )
            return value_node  # type: ignore[no-any-return]
    return None


def _replace_value(text: str, node: Node, status: Status) -> str:
    if not isinstance(node, ScalarNode) or node.value == "":
        raise EditError("status is not a single value; write active or inactive by hand",
                        _position(node))
    start, end = node.start_mark.index, node.end_mark.index
    # The scalar follows any anchor or tag, so its text is the last occurrence in the node.
    at = text.rfind(node.value, start, end)
    if at < 0:
        raise EditError("status is written with escapes; write active or inactive by hand",
                        _position(node))
    return text[:at] + status + text[at + len(node.value):]


def _insert_status(text: str, top: MappingNode, status: Status) -> str:
    name = next(
        ((key, value) for key, value in top.value
         if isinstance(key, ScalarNode) and key.value == "name"),
        top.value[0] if top.value else None,
    )
    if name is None:
        raise EditError("the file has no keys", START)
    key, value = name
    end = value.end_mark.index
    if top.flow_style:
        return f"{text[:end]}, status: {status}{text[end:]}"
    if end > 0 and text[end - 1] == "\n":
        at = end  # a block scalar's range already ends with its line break
    else:
        newline = text.find("\n", end)
        if newline < 0:
            ending = "\r\n" if "\r\n" in text else "\n"
            return f"{text}{ending}{' ' * key.start_mark.column}status: {status}{ending}"
        at = newline + 1
    ending = "\r\n" if text[:at].endswith("\r\n") else "\n"
    return f"{text[:at]}{' ' * key.start_mark.column}status: {status}{ending}{text[at:]}"


def _verify(before: Document, text: str, status: Status) -> None:
    """The splice must change `status` and nothing else; anything else is a bug, not a file."""
    expected = {**before.data, "status": status}
    try:
        after = parse(text).data
    except YamlError as error:
        raise EditError(f"setting status would break the file ({error.message}); edit it by hand",
                        START) from None
    if after != expected:
        raise EditError("setting status would change more than status; edit it by hand", START)


def _position(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


# --- mailhooks new: a commented file --------------------------------------------------------


@dataclass
class NewWebhook:
    identifier: str
    name: str
    events: list[str] | Literal["all"]
    url: str | None = None
    secret: str | None = None
    user_key: str | None = None
    api_token: str | None = None
    filters: dict[str, list[str]] = field(default_factory=dict)


def parse_events(text: str) -> list[str] | Literal["all"]:
    names = [name for name in text.replace(",", " ").split() if name]
    if names == ["all"]:
        return "all"
    unknown = [name for name in names if name not in EVENT_NAMES]
    if not names or unknown:
        raise EditError(
            f"unknown event {unknown[0]!r}: " if unknown else "no events given: "
            f"give all, or some of {', '.join(EVENT_NAMES)}"
        )
    return list(dict.fromkeys(names))


def parse_filter(text: str) -> tuple[str, list[str]]:
    """`sending_domain=mail.example.com,*.example.org` as a filter field and its values."""
    name, sep, values = text.partition("=")
    name = name.strip()
    listed = [value.strip() for value in values.split(",") if value.strip()]
    if not sep or name not in FILTER_FIELDS or not listed:
        raise EditError(
            f"{text!r} is not a filter: write FIELD=VALUE[,VALUE…] with FIELD one of "
            f"{', '.join(FILTER_FIELDS)}"
        )
    return name, listed


def parse_reference(text: str, what: str) -> str:
    reference = text.strip()
    if not is_reference(reference):
        raise EditError(f"{what} {reference!r} is not a secret reference: {HOW_TO_REFERENCE}")
    return reference


def parse_url(text: str) -> str:
    url = text.strip()
    if not url.lower().startswith(("https://", "http://")):
        raise EditError(f"{url!r} is not an endpoint URL: write https://host/path")
    return url


def schema_reference(file: Path) -> str:
    """The modeline's schema: relative to the repository's `schema/` when there is one."""
    for directory in _ancestors(file.parent):
        schema = directory / "schema" / "webhook.schema.json"
        if schema.is_file():
            return Path(os.path.relpath(schema, file.parent.resolve())).as_posix()
    return PUBLIC_SCHEMA


def _ancestors(directory: Path) -> list[Path]:
    resolved = directory.resolve()
    return [resolved, *resolved.parents]


def render(new: NewWebhook, schema: str) -> str:
    """A new webhook file: the schema modeline and one short comment per section."""
    lines = [
        f"# yaml-language-server: $schema={schema}",
        f"# Webhook {new.identifier}, written by `mailhooks new`.",
        "",
        "# Display name: 1-100 characters, unique in the directory.",
        f"name: {yaml_scalar(new.name)}",
        "# active sends events; inactive keeps the webhook but sends nothing.",
        "status: active",
        "# The email events to send: a list of names, or all.",
        f"events: {_flow_list(new.events) if new.events != 'all' else 'all'}",
    ]
    if new.filters:
        lines.append("# Only matching events: each list matches any of its values; all must match.")
        lines.append("filters:")
        lines.extend(f"  {name}: {_flow_list(values)}" for name, values in new.filters.items())
    lines.append("# Where the events go. Secrets are references, never the values themselves.")
    lines.extend(_channel_lines(new))
    return "\n".join(lines) + "\n"


def _channel_lines(new: NewWebhook) -> list[str]:
    if new.url is None:
        return [
            "channel:",
            "  type: pushover",
            f"  user_key: {json.dumps(new.user_key)}",
            f"  api_token: {json.dumps(new.api_token)}",
        ]
    lines = ["channel:", "  type: web", f"  url: {yaml_scalar(new.url)}"]
    if new.secret is not None:
        lines.append(f"  secret: {json.dumps(new.secret)}   # signs every request")
    return lines


def _flow_list(values: list[str]) -> str:
    return "[" + ", ".join(yaml_scalar(value, flow=True) for value in values) + "]"


def yaml_scalar(text: str, *, flow: bool = False) -> str:
    """`text` as YAML reads it back unchanged: plain when it can be, else double-quoted."""
    for candidate in (text, json.dumps(text, ensure_ascii=False), json.dumps(text)):
        source = f"k: [{candidate}]\n" if flow else f"k: {candidate}\n"
        try:
            read = parse(source).data
        except YamlError:
            continue
        if read == {"k": [text] if flow else text}:
            return candidate
    return json.dumps(text)  # pragma: no cover - ASCII JSON always reads back


# --- checking a candidate file --------------------------------------------------------------


def check_file(
    path: Path, shown: str, identifier: str, others: LoadResult, settings: Settings
) -> list[Problem]:
    """The problems `validate` would report for `path` as webhook `identifier`, next to the
    webhooks in `others` (whose names it must not reuse)."""
    try:
        raw = read_limited(path, settings.limits.max_file_bytes)
    except YamlError as error:
        return [Problem(shown, error.position, error.message)]
    except OSError as error:
        return [Problem(shown, START, f"cannot read: {os_reason(error)}")]
    webhook, found, _places = check_bytes(raw, settings)
    problems = [Problem(shown, where, message) for where, message in found]
    if webhook is None:
        return problems
    for other, loaded in sorted(others.webhooks.items()):
        if other != identifier and loaded.webhook.name.casefold() == webhook.name.casefold():
            problems.append(Problem(shown, name_position(raw),
                                    f"name: {webhook.name!r} is already used by {loaded.path}"))
    return problems


# --- writing files ---------------------------------------------------------------------------


@contextmanager
def staged(path: Path, data: bytes) -> Iterator[Path]:
    """`data` in a hidden file beside `path` (the loader and the daemon skip hidden files),
    removed afterwards unless it was moved into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    try:
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


def create(path: Path, staged_file: Path) -> None:
    """Put a staged file at `path`, refusing to overwrite: a link fails when `path` exists."""
    try:
        os.link(staged_file, path)
    except FileExistsError:
        raise EditError(f"{path} already exists; not overwriting it") from None


def write_over(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one rename, keeping its permissions: the daemon reads
    either the old file or the new one, never half of one."""
    with staged(path, data) as staged_file:
        staged_file.chmod(path.stat().st_mode & 0o7777)
        staged_file.replace(path)


# --- git: never commits, only says how ------------------------------------------------------


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True, text=True, check=False, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def git_toplevel(directory: Path) -> Path | None:
    """The work tree `directory` is in, or None outside git (or without git)."""
    # `git rm` removes directories it empties: ask from the nearest one still there.
    existing = next((path for path in (directory, *directory.absolute().parents)
                     if path.is_dir()), directory)
    done = _git(existing, "rev-parse", "--show-toplevel")
    if done is None or done.returncode != 0 or not done.stdout.strip():
        return None
    return Path(done.stdout.strip()).resolve()


def is_tracked(path: Path) -> bool:
    done = _git(path.parent, "ls-files", "--error-unmatch", "--", path.name)
    return done is not None and done.returncode == 0


def remove(path: Path) -> bool:
    """Delete the file, with `git rm` when git tracks it; True when git staged the removal."""
    if is_tracked(path):
        # -f: the user confirmed deleting the file, local modifications included.
        done = _git(path.parent, "rm", "-q", "-f", "--", path.name)
        if done is None or done.returncode != 0:
            reason = done.stderr.strip() if done is not None else "git did not run"
            raise EditError(f"git rm {path} failed: {reason}")
        return True
    path.unlink()
    return False


def commit_hint(top: Path, path: Path, message: str, *, add: bool) -> str:
    """The git command that would commit the change to `path` (absolute) and nothing else."""
    cwd = Path.cwd().resolve()
    if cwd.is_relative_to(top):
        git, shown = "git", os.path.relpath(path, cwd)
    else:
        git, shown = f"git -C {shlex.quote(str(top))}", path.relative_to(top).as_posix()
    quoted = shlex.quote(shown)
    commit = f"{git} commit -m {shlex.quote(message)} -- {quoted}"
    return f"{git} add -- {quoted} && {commit}" if add else commit
