"""Doctest settings: the examples show what the calls return, not the log lines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import guardrail as gr


@pytest.fixture(autouse=True)
def _instrumentation_off() -> Iterator[None]:
    gr.configure(hooks=[])
    yield
    gr.configure(hooks=None)
