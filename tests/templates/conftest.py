"""Fixtures for the template tests: sample variables, and compile-and-render in one call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mailhooks.templates import (
    Limits,
    Mode,
    Variables,
    Where,
    compile_template,
    event_variables,
    sample_context,
    sample_payload,
)

WHERE = Where("hooks/test.yaml", 5, 9)
Render = Callable[..., str]


@pytest.fixture
def variables() -> Variables:
    """A sample bounced event with its usual fields and metadata {"source": "sample"}."""
    return sample_context("bounced")


@pytest.fixture
def bare() -> Variables:
    """A sample bounced event with only the fields every event has."""
    return sample_context("bounced", bare=True)


def with_fields(**fields: Any) -> Variables:
    """A sample bounced event with `fields` set (None removes a field)."""
    payload = sample_payload("bounced")
    payload.update(fields)
    payload = {key: value for key, value in payload.items() if value is not None}
    return event_variables(payload, webhook_id="crm/opens", webhook_name="CRM opens")


@pytest.fixture
def render(variables: Variables) -> Render:
    """`render(source, mode="text", variables=None, limits=Limits())` → text."""

    def run(source: str, mode: Mode = "text", values: Variables | None = None,
            limits: Limits | None = None) -> str:
        template = compile_template(source, where=WHERE, mode=mode, limits=limits or Limits())
        return template.render(variables if values is None else values)

    return run
