"""The committed JSON Schemas: valid, current, described, closed, and true of the examples."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mailhooks.channels.pushover import PUSHOVER_SOUNDS, SOUND_NAMES
from mailhooks.documents.schema import generate, render
from mailhooks.documents.yaml import decode, parse
from mailhooks.events import EVENT_NAMES
from mailhooks.schemas import SCHEMAS
from tests.utils import REPO

SCHEMA_DIR = REPO / "schema"
FILES = sorted(SCHEMAS)


def committed(filename: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8"))
    return loaded


def schema_nodes(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema, with a JSON-pointer-like location."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str) or "properties" in node or "$ref" in node:
            yield where, node
        for key, value in node.items():
            yield from schema_nodes(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from schema_nodes(value, f"{where}/{index}")


def properties(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property of every object schema, `$defs` included."""
    for where, node in schema_nodes(schema):
        for name, prop in node.get("properties", {}).items():
            yield f"{where}/properties/{name}", prop


def test_the_schemas_are_committed() -> None:
    assert FILES == ["config.schema.json", "diff.schema.json", "event.schema.json",
                     "webhook.schema.json"]
    assert sorted(path.name for path in SCHEMA_DIR.glob("*.json")) == FILES


@pytest.mark.parametrize("filename", FILES)
def test_schema_is_valid_draft_2020_12(filename: str) -> None:
    schema = committed(filename)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("filename", FILES)
def test_committed_schema_equals_the_generated_one(filename: str) -> None:
    text = (SCHEMA_DIR / filename).read_text(encoding="utf-8")
    assert text == render(generate(SCHEMAS[filename], filename)), (
        f"schema/{filename} is out of date: run "
        ".venv/bin/python -m mailhooks.schemas schema"
    )


@pytest.mark.parametrize("filename", FILES)
def test_every_property_has_a_description(filename: str) -> None:
    found = list(properties(committed(filename)))
    assert len(found) >= 10
    undescribed = [where for where, prop in found if not prop.get("description")]
    assert undescribed == []


@pytest.mark.parametrize("filename", FILES)
def test_every_object_schema_is_closed(filename: str) -> None:
    objects = [
        (where, node) for where, node in schema_nodes(committed(filename))
        if node.get("type") == "object"
    ]
    assert objects
    # `metadata` of an event is an open map of scalars by design (SPEC §4): it is closed to
    # non-scalars by its additionalProperties schema instead. Slack's `blocks` are Block Kit
    # JSON, which Slack itself checks: open by design too; and so are a web channel's
    # `payload` and `envelope`, whose keys are the receiver's (the loader checks their values).
    open_ones = [
        where for where, node in objects
        if node.get("additionalProperties") is not False
        and not (where.endswith("/metadata") and isinstance(node.get("additionalProperties"), dict))
        and where not in ("#/$defs/SlackChannel/properties/blocks/items",
                          "#/$defs/WebChannel/properties/payload",
                          "#/$defs/WebChannel/properties/envelope")
    ]
    assert open_ones == []


def _enum_of(node: dict[str, Any]) -> list[Any]:
    if "enum" in node:
        return list(node["enum"])
    for option in node.get("anyOf", []) + node.get("oneOf", []):
        if "enum" in option:
            return list(option["enum"])
        if option.get("type") == "array" and "enum" in option.get("items", {}):
            return list(option["items"]["enum"])
    return []


def test_events_are_an_enum() -> None:
    events = committed("webhook.schema.json")["properties"]["events"]
    assert _enum_of(events) == list(EVENT_NAMES)
    assert [option.get("const") for option in events["anyOf"]] == ["all", None]
    assert committed("event.schema.json")["properties"]["event"]["enum"] == list(EVENT_NAMES)


def test_pushover_sounds_are_an_enum_of_seed_and_api_names() -> None:
    pushover = committed("webhook.schema.json")["$defs"]["PushoverChannel"]
    sounds = _enum_of(pushover["properties"]["sound"])
    assert sounds == list(SOUND_NAMES)
    assert set(PUSHOVER_SOUNDS) | set(PUSHOVER_SOUNDS.values()) == set(sounds)
    assert {"cash_register", "cashregister", "space_alarm", "none", "mute"} <= set(sounds)


def _yaml_files() -> list[Path]:
    files = sorted((REPO / "webhooks.d").rglob("*.y*ml"))
    assert files, "webhooks.d has no examples"
    return files


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_example_webhooks_are_valid_for_the_schema(path: Path) -> None:
    data = parse(decode(path.read_bytes())).data
    Draft202012Validator(committed("webhook.schema.json")).validate(data)


def test_systemd_example_config_is_valid_for_the_schema() -> None:
    config = REPO / "systemd" / "mailhooks.yaml"
    if not config.exists():
        pytest.skip("systemd/mailhooks.yaml does not exist yet")
    data = parse(decode(config.read_bytes())).data or {}
    Draft202012Validator(committed("config.schema.json")).validate(data)


def test_the_schema_rejects_what_the_loader_rejects() -> None:
    validator = Draft202012Validator(committed("webhook.schema.json"))
    good: dict[str, Any] = {"name": "x", "events": ["delivered"],
            "channel": {"type": "web", "url": "https://a.example.com/"}}
    assert validator.is_valid(good)
    bad_cases: list[dict[str, Any]] = [
        {**good, "extra": 1},
        {**good, "events": ["opened"]},
        {**good, "events": []},
        {**good, "name": "x" * 101},
        {**good, "channel": {**good["channel"], "secret": "hunter2"}},
        {**good, "channel": {"type": "slack", "url": "https://a.example.com/"}},
        {**good, "channel": {"type": "pushover", "user_key": "${env:U}",
                             "api_token": "${env:T}", "sound": "kazoo"}},
        {**good, "filters": {"sending_domain": ["mail.*.example.com"]}},
    ]
    for case in bad_cases:
        assert not validator.is_valid(case), case
