"""JSON Schemas generated from the pydantic models, and schema errors as `line:col` messages.

The files in `schema/` are this module's output (`python -m mailhooks.webhooks.schema
--write`); a test fails when they drift from the models.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema
from jsonschema import Draft202012Validator
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from mailhooks.events import Event
from mailhooks.settings import Settings
from mailhooks.webhooks.models import DOMAIN_PATTERN, NAME_PATTERN, URL_PATTERN, Webhook
from mailhooks.webhooks.secrets import HOW_TO_REFERENCE, SECRET_REF_PATTERN
from mailhooks.webhooks.yaml import PathPart

SCHEMA_BASE: Final = "https://mailhooks.dev/schema/"
SCHEMAS: Final[dict[str, type[BaseModel]]] = {
    "webhook.schema.json": Webhook,
    "config.schema.json": Settings,
    "event.schema.json": Event,
}


class _Generator(GenerateJsonSchema):
    """pydantic's generator, shaped for people writing YAML.

    Optional fields are written as absent, not null, so the schema offers no `null`
    and `default: null` never shows up in an editor.
    """

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        generated = super().default_schema(schema)
        if generated.get("default", 0) is None:
            del generated["default"]
        return generated

    def path_schema(self, schema: core_schema.CoreSchema) -> JsonSchemaValue:
        return {"type": "string", "minLength": 1}

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        generated = super().dict_schema(schema)
        if "patternProperties" in generated:
            generated["additionalProperties"] = False
        return generated


def generate(model: type[BaseModel], filename: str) -> dict[str, Any]:
    generated = model.model_json_schema(schema_generator=_Generator)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE + filename,
        **generated,
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


@cache
def validator(filename: str) -> Draft202012Validator:
    return Draft202012Validator(
        generate(SCHEMAS[filename], filename), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@dataclass(frozen=True)
class SchemaProblem:
    """One schema error: where (a path in the document, and whether at the key) and what."""

    path: tuple[PathPart, ...]
    message: str
    at_key: bool = False


def dotted(path: Sequence[PathPart]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def problems(filename: str, instance: Any) -> list[SchemaProblem]:
    """Every schema error of `instance`, most specific first and in document order."""
    found = [problem for error in validator(filename).iter_errors(instance)
             for problem in _explain(error)]
    unique = list(dict.fromkeys(found))
    return unique


# jsonschema's stubs type these attributes as "maybe unset"; an error from iter_errors
# always has them.
def _schema(error: jsonschema.ValidationError) -> dict[str, Any]:
    return dict(error.schema) if isinstance(error.schema, Mapping) else {}


def _value(error: jsonschema.ValidationError) -> Any:
    return error.validator_value


def _instance(error: jsonschema.ValidationError) -> Any:
    return error.instance


def _explain(error: jsonschema.ValidationError) -> Iterator[SchemaProblem]:
    path = tuple(error.absolute_path)
    where = dotted(path)
    prefix = f"{where}: " if where else ""
    if error.validator in ("oneOf", "anyOf") and error.context:
        branch = _chosen_branch(error)
        if branch is not None:
            for sub in branch:
                yield from _explain(sub)
            return
        if isinstance(_instance(error), dict) and "type" in _instance(error):
            # An unknown channel type: point at the type, not at the whole mapping.
            yield SchemaProblem((*path, "type"), f"{dotted((*path, 'type'))}: "
                                + _alternatives(error))
            return
        yield SchemaProblem(path, prefix + _alternatives(error))
        return
    if error.validator == "additionalProperties" and isinstance(_instance(error), dict):
        allowed = sorted(_schema(error).get("properties", {}))
        patterns = [re.compile(pattern) for pattern in _schema(error).get("patternProperties", {})]
        extras = [
            key for key in _instance(error)
            if key not in _schema(error).get("properties", {})
            and not any(pattern.search(key) for pattern in patterns)
        ]
        for key in extras:
            place = f"{where}." if where else ""
            if "patternProperties" in _schema(error):
                yield SchemaProblem((*path, key), f"{place}{key}: not a valid name here",
                                    at_key=True)
                continue
            hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
            yield SchemaProblem((*path, key), f"{place}{key}: unknown key{hint}", at_key=True)
        return
    if error.validator == "pattern" and _value(error) == SECRET_REF_PATTERN:
        yield SchemaProblem(path, f"{prefix}a literal secret is not allowed here; {HOW_TO_REFERENCE}")
        return
    if error.validator == "propertyNames":
        yield SchemaProblem(path, f"{prefix}{error.message}")
        return
    yield SchemaProblem(path, prefix + _message(error))


def _chosen_branch(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError] | None:
    """For a union, the errors of the branch the document meant, when that is clear.

    A mapping with a known `type` meant that channel; otherwise the branch whose type
    matches the value (a list where a list is allowed) is the one to report.
    """
    branches: dict[int, list[jsonschema.ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    options = _value(error)
    instance = _instance(error)
    for index, option in enumerate(options):
        resolved = _resolve(error, option)
        if isinstance(instance, dict) and "type" in instance:
            const = resolved.get("properties", {}).get("type", {}).get("const")
            if const == instance["type"]:
                return branches.get(index, [])
        elif (
            _json_type_fits(resolved, instance) and index in branches
            and not all(sub.validator == "type" for sub in branches[index])
        ):
            return branches[index]
    return None


def _resolve(error: jsonschema.ValidationError, option: dict[str, Any]) -> dict[str, Any]:
    ref = option.get("$ref")
    if not ref:
        return option
    root = validator("webhook.schema.json").schema
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


_JSON_TYPES: Final = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
}


def _json_type_fits(schema: dict[str, Any], instance: Any) -> bool:
    expected = schema.get("type")
    if "const" in schema or "enum" in schema:
        return isinstance(instance, str)
    if expected in ("integer", "number"):
        return isinstance(instance, int | float) and not isinstance(instance, bool)
    python_type = _JSON_TYPES.get(str(expected))
    return python_type is not None and isinstance(instance, python_type)


def _alternatives(error: jsonschema.ValidationError) -> str:
    described = []
    for option in _value(error):
        resolved = _resolve(error, option)
        if "const" in resolved:
            described.append(repr(resolved["const"]))
        elif resolved.get("properties", {}).get("type", {}).get("const"):
            described.append(f"a channel of type {resolved['properties']['type']['const']!r}")
        elif resolved.get("type"):
            described.append(f"a{'n' if str(resolved['type'])[0] in 'aeiou' else ''} "
                             f"{resolved['type']}")
    if isinstance(_instance(error), dict) and "type" in _instance(error):
        kinds = [option for option in described if option.startswith("a channel")]
        if kinds:
            return f"unknown type {_instance(error)['type']!r}; expected {' or '.join(kinds)}"
    return f"{_short(_instance(error))} is not valid; expected {' or '.join(described)}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# Patterns whose regex means nothing to the person who wrote the file.
_PATTERN_MESSAGES: Final = {
    DOMAIN_PATTERN: "is not a domain name; a wildcard is allowed only as the whole first "
    "label (*.example.org)",
    URL_PATTERN: "is not an http(s) URL with a host name (and no spaces or line breaks)",
    NAME_PATTERN: "must be one line of visible text",
}


def _message(error: jsonschema.ValidationError) -> str:
    kind, value, instance = error.validator, _value(error), _instance(error)
    if kind == "required":
        missing = [key for key in value if isinstance(instance, dict) and key not in instance]
        return f"missing required key {', '.join(repr(key) for key in missing)}"
    if kind == "enum":
        return f"{_short(instance)} is not one of {', '.join(str(v) for v in value)}"
    if kind == "const":
        return f"{_short(instance)} must be {value!r}"
    if kind == "type":
        return f"{_short(instance)} is not of type {value}"
    if kind == "maxLength":
        return f"too long: {len(instance)} characters, at most {value}"
    if kind == "minLength":
        return "must not be empty" if value == 1 else f"too short: at least {value} characters"
    if kind in ("maxItems", "maxProperties"):
        return f"too many entries: {len(instance)}, at most {value}"
    if kind in ("minItems", "minProperties"):
        return "must not be empty" if value == 1 else f"needs at least {value} entries"
    if kind == "pattern":
        if value in _PATTERN_MESSAGES:
            return f"{_short(instance)} {_PATTERN_MESSAGES[value]}"
        return f"{_short(instance)} is not valid here (must match {value})"
    return " ".join(error.message.split())


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, model in SCHEMAS.items():
        target = directory / filename
        target.write_text(render(generate(model, filename)), encoding="utf-8")
        written.append(target)
    return written


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "schema")):
        print(path)
