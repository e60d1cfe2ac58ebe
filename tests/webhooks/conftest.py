"""Fixtures for the webhooks-as-code tests (the webhooks directory fixtures are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from mailhooks.settings import Limits, Settings
from tests.conftest import WriteFile as WriteFile
from tests.conftest import webhook_yaml as webhook_yaml
from tests.utils import REPO as REPO

VENV_BIN = REPO / ".venv" / "bin"


@pytest.fixture
def settings() -> Settings:
    return Settings()


def settings_with(**limits: int) -> Settings:
    return Settings(limits=Limits(**limits))
