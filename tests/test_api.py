"""The public surface and the promises of ``import guardrail``."""

from __future__ import annotations

import subprocess
import sys

import guardrail as gr


class TestPublicAPI:
    def test_all_is_sorted(self) -> None:
        """__all__ is sorted, so additions are easy to review."""
        assert gr.__all__ == sorted(gr.__all__)

    def test_all_is_complete(self) -> None:
        """Every public name of the package is in __all__, and every entry exists."""
        public = {
            name
            for name in dir(gr)
            if not name.startswith("_")
            and name not in {"annotations", "testing", "TYPE_CHECKING"}
            and not isinstance(getattr(gr, name), type(sys))
        }
        assert public == set(gr.__all__)

    def test_everything_public_has_a_docstring(self) -> None:
        """Each public name carries a docstring."""
        missing = [name for name in gr.__all__ if not getattr(gr, name).__doc__]
        assert missing == []

    def test_py_typed_is_shipped(self) -> None:
        """The package is marked as typed."""
        from importlib.resources import files

        assert files("guardrail").joinpath("py.typed").is_file()


class TestLazyMechanisms:
    def test_mechanisms_load_on_first_use(self) -> None:
        """import guardrail loads no mechanism module; naming one loads it."""
        code = """
import sys, guardrail as gr
lazy = ["_drift", "_holdout", "_limits", "_outcomes", "_profile", "_redis", "_skew",
        "_thresholds", "_mechanism_events"]
assert not [m for m in lazy if "guardrail." + m in sys.modules]
assert gr.ActionLimit.__module__ == "guardrail._limits"
assert "guardrail._limits" in sys.modules
print("lazy")
"""
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "lazy"

    def test_unknown_names_still_fail(self) -> None:
        """A misspelled name is an AttributeError, not a silent None."""
        import pytest

        with pytest.raises(AttributeError, match="Probabilty"):
            gr.Probabilty  # type: ignore[attr-defined]


class TestImportHasNoSideEffects:
    def test_no_thread_no_socket_no_logging(self) -> None:
        """import guardrail starts no thread, opens no socket, configures no logging."""
        code = """
import logging, socket, threading
opened = []
real = socket.socket.__init__
def spy(self, *a, **k):
    opened.append(a)
    real(self, *a, **k)
socket.socket.__init__ = spy
import structlog
before = structlog.is_configured()
import guardrail, guardrail.testing
assert threading.active_count() == 1, threading.enumerate()
assert opened == [], opened
assert logging.getLogger().handlers == []
assert structlog.is_configured() == before
print("clean")
"""
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "clean"


class TestEvents:
    def test_every_event_is_a_frozen_attrs_value(self) -> None:
        """Each public event is an attrs class that cannot be changed."""
        import attrs

        events = [
            getattr(gr, name)
            for name in gr.__all__
            if isinstance(getattr(gr, name), type) and issubclass(getattr(gr, name), gr.Event)
        ]
        assert len(events) > 10
        for cls in events:
            # Inherited attrs metadata would hide a missing decorator: ask the class itself.
            assert "__attrs_attrs__" in vars(cls), cls
            assert attrs.has(cls)
            assert cls.__setattr__ is not object.__setattr__, cls

    def test_event_kinds_are_unique(self) -> None:
        """No two events share a kind."""
        kinds = [
            getattr(gr, name).kind
            for name in gr.__all__
            if isinstance(getattr(gr, name), type) and issubclass(getattr(gr, name), gr.Event)
        ]
        assert len(kinds) == len(set(kinds))
