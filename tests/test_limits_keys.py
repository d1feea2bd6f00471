"""Limit keys: str subclasses count as their string; digests are keyed with a secret."""

from __future__ import annotations

import enum
import hashlib
from typing import Any

import numpy as np
import pytest

import guardrail as gr
from guardrail.limits import RedisStore
from guardrail.testing import capture_events

SECRET = "a fleet-wide secret of some length"


class Color(enum.StrEnum):
    RED = "red"


class TestStrSubclassKeys:
    @pytest.mark.parametrize("key", [np.str_("red"), Color.RED])
    def test_allow_counts_a_str_subclass_as_its_string(self, key: str) -> None:
        """allow() counts numpy.str_ and StrEnum keys in the budget of the plain string."""
        limit = gr.ActionLimit("keys", max_actions=2, per="1h")
        with capture_events() as events:
            assert [limit.allow(key), limit.allow("red"), limit.allow(key)] == [True, True, False]
        assert not any(isinstance(e, gr.instrumentation.LimitDegraded) for e in events)
        assert limit.remaining("red") == 0

    @pytest.mark.parametrize("key", [np.str_("red"), Color.RED])
    def test_key_functions_may_return_a_str_subclass(self, key: str) -> None:
        """A decorated action whose key function returns a str subclass is counted, not degraded."""
        limit = gr.ActionLimit("keys", max_actions=1, per="1h", key=lambda user: key)

        @limit.guard
        def act(user: str) -> str:
            return "done"

        with capture_events() as events:
            assert [act("a"), act("b")] == ["done", None]
        assert not any(isinstance(e, gr.instrumentation.LimitDegraded) for e in events)
        assert limit.remaining("red") == 0

    def test_a_str_subclass_key_in_a_guard(self) -> None:
        """In a guard, a key function returning numpy.str_ decides as for the plain string."""
        limit = gr.ActionLimit(
            "rows", max_actions=1, per="1h", key=lambda row: np.str_(row["merchant"])
        )

        @gr.guard(
            model=gr.ModelRef(name="m", version="1"),
            returns=gr.Probability,
            threshold=gr.Threshold(0.5, scale=gr.Probability),
            limits=[limit],
        )
        def predict(row: dict[str, Any]) -> float:
            return 0.9

        first = predict({"merchant": "m1"})
        second = predict({"merchant": "m1"})
        assert (first.act, first.degraded, second.act) == (True, False, False)

    def test_a_key_function_returning_a_non_str_is_decided_by_on_error(self) -> None:
        """A key function returning an int is degraded and denied (on_error="closed")."""
        limit = gr.ActionLimit("keys", max_actions=5, per="1h", key=lambda user: 7)

        @limit.guard
        def act(user: str) -> str:
            return "done"

        with capture_events() as events:
            assert act("a") is None
        (degraded,) = [e for e in events if isinstance(e, gr.instrumentation.LimitDegraded)]
        assert "int" in degraded.error

    def test_a_non_str_key_is_a_type_error(self) -> None:
        """allow() with a key that is not a str at all is a TypeError."""
        with pytest.raises(TypeError):
            gr.ActionLimit("keys", max_actions=5, per="1h").allow(7)  # type: ignore[arg-type]


def unkeyed(key: str, size: int) -> str:
    return hashlib.blake2b(key.encode(), digest_size=size).hexdigest()


class TestKeyedDigests:
    def test_redis_keys_are_digested_with_the_secret(self, redis_server: Any) -> None:
        """Redis key names carry a keyed digest: same secret, same name; no secret to guess from."""
        window = (gr.limits.Window(5, "1h"),)

        def name(secret: str) -> str:
            store = RedisStore(redis_server.client(), namespace="keys", key_secret=secret)
            return str(store.bind("ids", window, 0.8).redis_key("123456"))

        assert name(SECRET) == name(SECRET)
        assert name(SECRET) != name(SECRET + "!")
        assert not name(SECRET).endswith(unkeyed("123456", 16))

    def test_the_secret_comes_from_the_environment(
        self, redis_server: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """GUARDRAIL_KEY_SECRET keys the digests when no secret is given."""
        window = (gr.limits.Window(5, "1h"),)
        given = RedisStore(redis_server.client(), namespace="keys", key_secret=SECRET)
        monkeypatch.setenv("GUARDRAIL_KEY_SECRET", SECRET)
        from_env = RedisStore(redis_server.client(), namespace="keys")
        assert from_env.keyed
        assert from_env.bind("ids", window, 0.8).redis_key("1") == given.bind(
            "ids", window, 0.8
        ).redis_key("1")

    def test_a_short_secret_is_a_config_error(self, redis_server: Any) -> None:
        """A secret shorter than 16 characters is a ConfigError."""
        with pytest.raises(gr.ConfigError, match="key_secret"):
            RedisStore(redis_server.client(), key_secret="short")

    def test_event_digests_are_keyed(self) -> None:
        """An event's key digest is not the unkeyed hash of the key."""
        limit = gr.ActionLimit("keys", max_actions=1, per="1h")
        with capture_events() as events:
            limit.allow("123456")
            limit.allow("123456")
        (exceeded,) = [e for e in events if isinstance(e, gr.instrumentation.LimitExceeded)]
        assert exceeded.key is not None
        assert len(exceeded.key) == 16
        assert exceeded.key != unkeyed("123456", 8)
