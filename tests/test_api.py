"""The public surface and the promises of ``import guardrail``."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import guardrail as gr

PUBLIC_MODULES = [
    "guardrail.errors",
    "guardrail.guards",
    "guardrail.holdout",
    "guardrail.instrumentation",
    "guardrail.limits",
    "guardrail.mechanisms",
    "guardrail.mlflow",
    "guardrail.outcomes",
    "guardrail.skew",
    "guardrail.testing",
    "guardrail.thresholds",
]


class TestPublicAPI:
    def test_all_is_sorted(self) -> None:
        """__all__ is sorted, so additions are easy to review."""
        assert gr.__all__ == sorted(gr.__all__)

    def test_all_is_complete(self) -> None:
        """Every public name of the package is in __all__, and every entry exists."""
        public = {
            name
            for name in dir(gr)
            if not name.startswith("_") and not isinstance(getattr(gr, name), type(sys))
        }
        assert public == set(gr.__all__)

    def test_the_top_level_is_short(self) -> None:
        """dir(guardrail) shows about 30 names and the public modules by family."""
        assert 25 <= len(gr.__all__) <= 40
        modules = {n for n in dir(gr) if isinstance(getattr(gr, n), type(sys))}
        assert modules == {
            "errors",
            "guards",
            "holdout",
            "instrumentation",
            "limits",
            "mechanisms",
            "outcomes",
            "skew",
            "testing",
            "thresholds",
        }

    @pytest.mark.parametrize("module", PUBLIC_MODULES)
    def test_public_modules_are_sorted_and_report_themselves(self, module: str) -> None:
        """Each public module's __all__ is sorted, and its names report a public module."""
        public = importlib.import_module(module)
        assert public.__all__ == sorted(public.__all__)
        for name in public.__all__:
            value = getattr(public, name)
            if isinstance(value, (type, types.FunctionType)):
                expected = "guardrail" if name in gr.__all__ else module
                assert value.__module__ == expected, name

    def test_top_level_names_report_the_top_level(self) -> None:
        """A name offered at the top level reports guardrail, not a private module."""
        for name in gr.__all__:
            value = getattr(gr, name)
            if isinstance(value, (type, types.FunctionType)):
                assert value.__module__ == "guardrail", name

    def test_every_exception_ends_in_error(self) -> None:
        """Every exception class is named ...Error and lives in guardrail.errors."""
        import guardrail.errors

        for module in PUBLIC_MODULES:
            public = importlib.import_module(module)
            for name in public.__all__:
                value = getattr(public, name)
                if isinstance(value, type) and issubclass(value, BaseException):
                    assert name.endswith("Error"), name
                    assert name in guardrail.errors.__all__, name

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
assert gr.ActionLimit.__module__ == "guardrail"
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
            getattr(gr.instrumentation, name)
            for name in gr.instrumentation.__all__
            if isinstance(getattr(gr.instrumentation, name), type)
            and issubclass(getattr(gr.instrumentation, name), gr.instrumentation.Event)
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
            if isinstance(getattr(gr, name), type)
            and issubclass(getattr(gr, name), gr.instrumentation.Event)
        ]
        assert len(kinds) == len(set(kinds))
