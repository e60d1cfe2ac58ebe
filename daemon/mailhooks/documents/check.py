"""Read a YAML file within a size limit, and check its document against a model: the
schema's messages for a file that fails, pydantic's typed model for one that passes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mailhooks.documents.positions import START, PathPart, Position, SchemaProblem, dotted
from mailhooks.documents.schema import problems
from mailhooks.documents.yaml import Document, YamlError
from mailhooks.files import FileTooLarge, NotRegularFile, read_regular

ModelT = TypeVar("ModelT", bound=BaseModel)
Found = list[tuple[Position, str]]


def read_limited(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, or an error before reading more than `max_bytes` of it. Only a
    regular file is read: opening a FIFO named `x.yaml` would block until a writer came."""
    try:
        return read_regular(path, max_bytes)
    except NotRegularFile:
        raise YamlError("not a regular file") from None
    except FileTooLarge:
        raise YamlError(
            f"file too large: over {max_bytes} bytes (limits.max_file_bytes in the config)"
        ) from None


def check_document(
    document: Document, model: type[ModelT],
    extra: Callable[[dict[str, Any]], Iterable[SchemaProblem]] | None = None,
) -> tuple[ModelT | None, Found]:
    """Schema first (for messages about the file as written), then the typed model."""
    data = document.data
    if data is None:
        return None, [(START, "file is empty")]
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        return None, [(START, f"expected a mapping of keys at the top of the file, found {kind}")]
    extra_found = list(extra(data)) if extra is not None else []
    if not extra_found and not _has_null(data):
        # The fast path for the usual, valid file: pydantic (strict, so it coerces
        # nothing the schema would refuse) checks it in its core. The schema, generated
        # from the same model, runs only to explain a file that fails.
        try:
            return model.model_validate(data, strict=True, context=STRICT), []
        except ValidationError:
            pass
    found = list(dict.fromkeys([*problems(model, data), *extra_found]))
    if found:
        return None, sorted(
            {(document.position(p.path, key=p.at_key), p.message) for p in found}
        )
    try:
        return model.model_validate(data), []
    except ValidationError as error:
        return None, sorted(
            (document.position(path), f"{dotted(path)}: {item['msg'].removeprefix('Value error, ')}")
            for item in error.errors()
            for path in [_document_path(data, item["loc"])]
        )


# Validators that validate a nested model themselves (a channel, by its type) read this
# from the context to validate it as strictly as the document around it.
STRICT = {"strict": True}


def _has_null(value: Any) -> bool:
    """The schema has no nulls (an optional key is left out); pydantic's optionals do."""
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_null(item) for item in value)
    return False


def _document_path(data: Any, loc: tuple[int | str, ...]) -> tuple[PathPart, ...]:
    """pydantic's error location without the union tags it adds (`channel.web.url`)."""
    path: list[PathPart] = []
    node = data
    for part in loc:
        in_mapping = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_mapping or in_list:
            node = node[part]
            path.append(part)
    return tuple(path)
