"""Shared fixtures: every test starts from guardrail's default settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from guardrail._config import CONFIG


@pytest.fixture(autouse=True)
def _fresh_config() -> Iterator[None]:
    hooks, policy = CONFIG._hooks, CONFIG.on_undeclared_consumer
    yield
    CONFIG.set_hooks(hooks)
    CONFIG.on_undeclared_consumer = policy
