"""Action limits with the in-memory store: the guarantee, the API, the mechanism."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrail as gr
from guardrail import testing
from guardrail.mechanisms import Call
from guardrail.testing import capture_events

MODEL = gr.ModelRef(name="fraud", version="1")


class Clock:
    """A controllable monotonic clock, read in seconds and kept in nanoseconds (``now``)."""

    def __init__(self, start: int = 10**12) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now / 1e9

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)


def limit_with_clock(**kwargs: Any) -> tuple[gr.ActionLimit, Clock]:
    clock = Clock()
    kwargs.setdefault("max_actions", 3)
    kwargs.setdefault("per", "1m")
    return gr.ActionLimit("test", store=gr.limits.MemoryStore(clock=clock), **kwargs), clock


@pytest.fixture(autouse=True)
def _quiet() -> None:
    gr.configure(hooks=[])
    return


# Arrival patterns: gaps between attempts (ns) with bursts, idle spells and jumps.
gaps = st.one_of(
    st.just(0),
    st.integers(0, 10**6),
    st.integers(0, 3 * 10**8),
    st.integers(10**9, 10**11),  # a clock jump past every window
)
arrivals = st.lists(st.tuples(gaps, st.integers(1, 3)), min_size=1, max_size=300)


def run(window: gr.limits.Window, pattern: list[tuple[int, int]]) -> tuple[list[Any], list[Any]]:
    """Drive a counter; return the allowed (time, weight) and denied (time, weight)."""
    clock = Clock()
    counter = gr.limits.MemoryStore(clock=clock).bind("p", (window,), 0.8)
    allowed, denied = [], []
    for gap, weight in pattern:
        clock.now += gap
        code = counter.acquire("k", min(weight, window.max_actions))
        (denied if code & 2 else allowed).append((clock.now, min(weight, window.max_actions)))
    return allowed, denied


class TestGuarantee:
    @settings(max_examples=150, deadline=None)
    @given(
        max_actions=st.integers(1, 12),
        per_ms=st.integers(1, 500),
        buckets=st.integers(1, 12),
        pattern=arrivals,
    )
    def test_no_interval_of_length_per_holds_more_than_max(
        self, max_actions: int, per_ms: int, buckets: int, pattern: list[tuple[int, int]]
    ) -> None:
        """In any closed interval of length per, allowed weights sum to at most max_actions."""
        window = gr.limits.Window(max_actions, per_ms / 1000, buckets=buckets)
        allowed, _ = run(window, pattern)
        per = window.per_ns
        for start, _ in allowed:
            inside = sum(w for t, w in allowed if start <= t <= start + per)
            assert inside <= max_actions

    @settings(max_examples=150, deadline=None)
    @given(
        max_actions=st.integers(1, 12),
        per_ms=st.integers(1, 500),
        buckets=st.integers(1, 12),
        pattern=arrivals,
    )
    def test_denial_is_early_by_at_most_one_sub_window(
        self, max_actions: int, per_ms: int, buckets: int, pattern: list[tuple[int, int]]
    ) -> None:
        """A denial at t means the actions in (t - per - width, t] already fill the cap."""
        window = gr.limits.Window(max_actions, per_ms / 1000, buckets=buckets)
        allowed, denied = run(window, pattern)
        span = window.width_ns * (buckets + 1)
        assert span <= window.per_ns + window.width_ns + buckets
        for t, weight in denied:
            recent = sum(w for s, w in allowed if t - span < s <= t)
            assert recent + weight > max_actions

    @settings(max_examples=60, deadline=None)
    @given(pattern=arrivals)
    def test_every_window_of_a_multi_window_limit_holds(
        self, pattern: list[tuple[int, int]]
    ) -> None:
        """With several windows, each one's guarantee holds for the allowed actions."""
        clock = Clock()
        windows = (gr.limits.Window(3, 0.05, buckets=5), gr.limits.Window(7, 0.4, buckets=4))
        counter = gr.limits.MemoryStore(clock=clock).bind("m", windows, 0.8)
        allowed = []
        for gap, weight in pattern:
            clock.now += gap
            if not counter.acquire("k", weight) & 2:
                allowed.append((clock.now, weight))
        for window in windows:
            for start, _ in allowed:
                inside = sum(w for t, w in allowed if start <= t <= start + window.per_ns)
                assert inside <= window.max_actions

    @settings(max_examples=150, deadline=None)
    @given(
        max_actions=st.integers(1, 12),
        per_ms=st.integers(1, 500),
        buckets=st.integers(1, 12),
        pattern=st.lists(
            st.tuples(gaps, st.integers(0, 3 * 10**8), st.integers(1, 3), st.booleans()),
            min_size=1,
            max_size=200,
        ),
    )
    def test_refunds_keep_the_guarantee(
        self,
        max_actions: int,
        per_ms: int,
        buckets: int,
        pattern: list[tuple[int, int, int, bool]],
    ) -> None:
        """Refunds, even across a sub-window boundary, keep every interval of per within the cap."""
        window = gr.limits.Window(max_actions, per_ms / 1000, buckets=buckets)
        clock = Clock()
        counter = gr.limits.MemoryStore(clock=clock).bind("p", (window,), 0.8)
        taken = []
        pending: list[tuple[int, int]] = []
        for gap, lag, weight, give_back in pattern:
            clock.now += gap
            mark = counter.mark()
            clock.now += lag  # the decision is made a little after its mark
            weight = min(weight, max_actions)
            allowed = not counter.acquire("k", weight) & 2
            # A refund arrives after the next decision (another thread's, say).
            for refund in pending:
                counter.refund("k", *refund)
            pending.clear()
            if allowed and give_back:
                pending.append((weight, mark))
            elif allowed:
                taken.append((clock.now, weight))
        for start, _ in taken:
            inside = sum(w for t, w in taken if start <= t <= start + window.per_ns)
            assert inside <= max_actions

    def test_a_late_refund_takes_the_count_from_the_older_sub_window(self) -> None:
        """A refund arriving after a new sub-window began never frees the new one's counts."""
        clock = Clock(start=10**12 - 10)  # 10 ns before a sub-window ends
        counter = gr.limits.MemoryStore(clock=clock).bind(
            "p", (gr.limits.Window(2, "1s", buckets=1),), 0.8
        )
        mark = counter.mark()
        assert counter.acquire("k", 1) == 0  # to be refunded
        clock.advance(0.5)
        assert counter.acquire("k", 1) == 1  # taken, in the next sub-window
        counter.refund("k", 1, mark)
        clock.advance(0.6)  # the refunded action's sub-window has left
        # Within 0.6 s of the taken action, a cap of 2 a second leaves room for one.
        assert [counter.acquire("k", 1) & 2 for _ in range(2)] == [0, 2]

    def test_a_refund_gives_the_budget_back(self) -> None:
        """Refunding what was counted in the same sub-window restores the remaining budget."""
        limit, _ = limit_with_clock(max_actions=3)
        counter = limit._counter
        mark = counter.mark()  # type: ignore[attr-defined]
        assert limit.allow(weight=2)
        counter.refund("", 2, mark)  # type: ignore[attr-defined]
        assert limit.remaining() == 3

    def test_budget_comes_back_after_the_window(self) -> None:
        """After per (plus one sub-window at most), the full budget is back."""
        limit, clock = limit_with_clock(max_actions=2, per="10s")
        assert [limit.allow(), limit.allow(), limit.allow()] == [True, True, False]
        clock.advance(10)
        assert limit.remaining() in (0, 2)
        clock.advance(1)
        assert limit.remaining() == 2
        assert limit.allow()

    def test_a_clock_that_goes_back_never_frees_budget(self) -> None:
        """If the clock steps back, counts stay where they were."""
        limit, clock = limit_with_clock(max_actions=2, per="10s")
        clock.advance(30)
        assert limit.allow()
        assert limit.allow()
        clock.advance(-25)
        assert not limit.allow()

    def test_keys_have_separate_budgets(self) -> None:
        """Each key of a keyed limit has its own budget."""
        limit, _ = limit_with_clock(max_actions=1)
        assert limit.allow("a")
        assert limit.allow("b")
        assert not limit.allow("a")
        assert limit.remaining("a") == 0
        assert limit.remaining("c") == 1


class TestMemoryStore:
    def test_contention_is_exact(self) -> None:
        """8 threads x 500 attempts at a limit of 1,000 admit exactly 1,000."""
        limit = gr.ActionLimit("contended", max_actions=1000, per="1h")
        results: list[list[bool]] = [[] for _ in range(8)]
        barrier = threading.Barrier(8)

        def attempt(out: list[bool]) -> None:
            barrier.wait()
            for _ in range(500):
                out.append(limit.allow())

        threads = [threading.Thread(target=attempt, args=(r,)) for r in results]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(sum(r) for r in results) == 1000

    def test_no_false_denials_under_contention(self) -> None:
        """8 threads x 125 attempts at a limit of 1,000 are all allowed."""
        limit = gr.ActionLimit("roomy", max_actions=1000, per="1h", key=lambda k: k)
        denied = []
        barrier = threading.Barrier(8)

        def attempt() -> None:
            barrier.wait()
            denied.extend(x for x in (limit.allow("k") for _ in range(125)) if not x)

        threads = [threading.Thread(target=attempt) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert denied == []
        assert limit.remaining("k") == 0

    def test_expired_keys_are_swept_lazily(self) -> None:
        """Keys with nothing counted are dropped once the key count doubles."""
        limit, clock = limit_with_clock(max_actions=1, per="1s")
        counter = limit._counter
        for i in range(1024):
            limit.allow(f"old-{i}")
        clock.advance(5)
        for i in range(1100):
            limit.allow(f"new-{i}")
        assert len(counter) <= 1100 + 1  # type: ignore[arg-type]
        assert limit.remaining("new-1") == 0

    @pytest.mark.parametrize(
        "windows",
        [[gr.limits.Window(1, "1s")], [gr.limits.Window(1, "1s"), gr.limits.Window(2, "2s")]],
    )
    def test_max_keys_bounds_the_keys_held(self, windows: list[gr.limits.Window]) -> None:
        """At max_keys active keys a new key is degraded and denied (on_error); held keys go on."""
        clock = Clock()
        limit = gr.ActionLimit(
            "capped", windows=windows, store=gr.limits.MemoryStore(clock=clock, max_keys=3)
        )
        assert [limit.allow(k) for k in ("a", "b", "c")] == [True, True, True]
        with capture_events() as events:
            assert not limit.allow("d")
            assert not limit.allow("e")
        assert [e.kind for e in events] == ["limit.degraded"]
        assert "max_keys" in events[0].error  # type: ignore[attr-defined]
        assert events[0].policy == "closed"  # type: ignore[attr-defined]
        assert len(limit._counter) == 3  # type: ignore[arg-type]
        clock.advance(1.2)
        assert limit.allow("a")  # a held key is decided as usual
        clock.advance(5)
        assert limit.allow("d")  # expired keys are swept to make room

    def test_max_keys_with_on_error_open(self) -> None:
        """With on_error='open' a new key past max_keys is allowed, degraded, and not counted."""
        limit = gr.ActionLimit(
            "capped",
            max_actions=1,
            per="1h",
            on_error="open",
            store=gr.limits.MemoryStore(max_keys=1),
        )
        assert limit.allow("a")
        assert limit.allow("b")
        assert limit.allow("b")
        assert limit.remaining("b") == 1

    @pytest.mark.parametrize("max_keys", [0, -1, 1.5, True, "10"])
    def test_bad_max_keys(self, max_keys: Any) -> None:
        """max_keys must be a positive int."""
        with pytest.raises(gr.ConfigError, match="max_keys"):
            gr.limits.MemoryStore(max_keys=max_keys)

    def test_reset_at_is_when_the_last_action_expires(self) -> None:
        """reset_at is about per (plus a sub-window) after the newest action."""
        import time

        limit, clock = limit_with_clock(max_actions=5, per="10s")
        limit.allow()
        clock.advance(3)
        limit.allow()
        delay = limit.reset_at() - time.time()
        assert 10 <= delay <= 11 + 0.5
        clock.advance(20)
        assert limit.reset_at() - time.time() < 0.5


class TestConfiguration:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"max_actions": 0, "per": "1m"}, "max_actions"),
            ({"max_actions": -3, "per": "1m"}, "max_actions"),
            ({"max_actions": 2.5, "per": "1m"}, "max_actions"),
            ({"max_actions": True, "per": "1m"}, "max_actions"),
            ({"max_actions": 5, "per": 0}, "positive"),
            ({"max_actions": 5, "per": "0s"}, "positive"),
            ({"max_actions": 5, "per": "0.5ms"}, "at least"),
            ({"max_actions": 5, "per": "fortnight"}, "cannot read"),
            ({"max_actions": 5, "per": "1y"}, "cannot read"),
            ({"max_actions": 5, "per": float("inf")}, "finite"),
            ({"max_actions": 5, "per": None}, "needs max_actions"),
            ({"max_actions": 5, "per": [1]}, "the window is"),
            ({"max_actions": 5, "per": "1m", "weight": 6}, "above the limit"),
            ({"max_actions": 5, "per": "1m", "weight": 0}, "weight"),
            ({"max_actions": 5, "per": "1m", "on_exceed": "ignore"}, "on_exceed"),
            ({"max_actions": 5, "per": "1m", "on_error": "maybe"}, "on_error"),
            ({"max_actions": 5, "per": "1m", "near": 1.5}, "near"),
            ({"max_actions": 5, "per": "1m", "key": "merchant"}, "key"),
            ({"max_actions": 5, "per": "1m", "store": object()}, "store"),
            ({"max_actions": 5, "per": "1m", "windows": [gr.limits.Window(1, 1)]}, "not both"),
            ({"windows": [(1, 1)]}, "Window values"),
            ({"windows": "1m"}, "list of Window"),
        ],
    )
    def test_bad_configuration_is_a_config_error(
        self, kwargs: dict[str, Any], message: str
    ) -> None:
        """Each bad setting is refused when the limit is made, with a clear message."""
        with pytest.raises(gr.ConfigError, match=message):
            gr.ActionLimit("bad", **kwargs)

    @pytest.mark.parametrize("name", ["", "a:b", "has space", "x" * 101, 3])
    def test_bad_names_are_refused(self, name: Any) -> None:
        """A limit name is a short identifier (it ends up in keys and reasons)."""
        with pytest.raises(gr.ConfigError, match="name"):
            gr.ActionLimit(name, max_actions=1, per=1)

    def test_windows_parse(self) -> None:
        """Window lengths read as seconds or as number-and-unit strings."""
        assert gr.limits.Window(1, "1m").per == 60.0
        assert gr.limits.Window(1, "1.5h").per == 5400.0
        assert gr.limits.Window(1, "d").per == 86400.0
        assert gr.limits.Window(1, " 250ms ").per == 0.25
        assert gr.limits.Window(1, 2).per == 2.0

    def test_weight_above_a_second_window_is_refused(self) -> None:
        """A weight must fit every window, not just the first."""
        with pytest.raises(gr.ConfigError, match="above the limit"):
            gr.ActionLimit(
                "w", windows=[gr.limits.Window(10, "1m"), gr.limits.Window(3, "1h")], weight=5
            )

    def test_bad_buckets(self) -> None:
        """Sub-windows per window are a positive int up to 1000."""
        with pytest.raises(gr.ConfigError, match="buckets"):
            gr.limits.Window(1, 1, buckets=0)
        with pytest.raises(gr.ConfigError, match="buckets"):
            gr.limits.Window(1, 1, buckets=5000)

    def test_settings_are_read_only(self) -> None:
        """A limit's settings cannot be changed after it is made."""
        limit = gr.ActionLimit("f", max_actions=1, per=1)
        with pytest.raises(AttributeError):
            limit.max_actions = 5  # type: ignore[misc]
        with pytest.raises(AttributeError):
            limit.extra = 1  # type: ignore[attr-defined]
        assert limit.windows == (gr.limits.Window(1, 1.0),)

    def test_a_limit_is_state_compared_by_identity(self) -> None:
        """Two limits with the same settings count apart, so they are not equal."""
        a, b = gr.ActionLimit("f", max_actions=1, per=1), gr.ActionLimit("f", max_actions=1, per=1)
        assert a == a
        assert a != b
        assert len({a, b}) == 2

    def test_repr_shows_the_settings(self) -> None:
        """The repr names every setting, as the constructor takes them."""
        limit = gr.ActionLimit("f", max_actions=2, per="1h")
        assert repr(limit) == (
            "ActionLimit(name='f', max_actions=2, per='1h', "
            "windows=(Window(max_actions=2, per=3600.0, buckets=10),), key=None, weight=1, "
            "on_exceed='fallback', fallback=None, near=0.8, "
            "store=MemoryStore(max_keys=1000000), on_error='closed')"
        )


class TestOnExceed:
    def test_raise(self) -> None:
        """on_exceed='raise' raises ActionLimitExceededError, a PolicyError."""
        limit, _ = limit_with_clock(max_actions=1, on_exceed="raise")
        assert limit.allow("m")
        with pytest.raises(gr.errors.ActionLimitExceededError, match="'test' exceeded") as info:
            limit.allow("m")
        assert isinstance(info.value, gr.PolicyError)
        assert info.value.key == "m"
        assert not info.value.degraded

    def test_fallback_from_a_decorated_function(self) -> None:
        """A denied call returns the fallback without running the function."""
        limit, _ = limit_with_clock(max_actions=2, fallback="queued", key=lambda m: m)
        calls = []

        @limit.guard
        def block_card(merchant: str) -> str:
            calls.append(merchant)
            return "blocked"

        assert [block_card("a"), block_card("a"), block_card("a"), block_card("b")] == [
            "blocked",
            "blocked",
            "queued",
            "blocked",
        ]
        assert calls == ["a", "a", "b"]
        assert block_card.__name__ == "block_card"

    def test_report_allows_and_reports(self) -> None:
        """on_exceed="report" lets every action through and sends the exceeded alert."""
        limit, _ = limit_with_clock(max_actions=1, on_exceed="report")
        with capture_events() as events:
            assert all(limit.allow() for _ in range(4))
        exceeded = [e for e in events if isinstance(e, gr.instrumentation.LimitExceeded)]
        assert len(exceeded) == 1
        assert exceeded[0].report_only

    def test_reported_denials_are_not_counted(self) -> None:
        """on_exceed="report" counts what enforcement would have counted."""
        limit, clock = limit_with_clock(max_actions=2, per="10s", on_exceed="report")
        for _ in range(5):
            limit.allow()
        clock.advance(11)
        assert limit.remaining() == 2

    def test_async_action_function(self) -> None:
        """An async action function is limited the same way."""
        limit, _ = limit_with_clock(max_actions=1, key=lambda user: user, fallback="skipped")

        @limit.guard
        async def send(user: str) -> str:
            return f"sent {user}"

        async def main() -> list[str]:
            return [await send("a"), await send("a"), await send("b")]

        assert asyncio.run(main()) == ["sent a", "skipped", "sent b"]

    def test_weight_function(self) -> None:
        """A weight function counts several actions for one call."""
        limit, _ = limit_with_clock(max_actions=5, weight=lambda n: n)

        @limit.guard
        def send_batch(n: int) -> int:
            return n

        assert [send_batch(3), send_batch(3), send_batch(2)] == [3, None, 2]


class TestBadCallTimeInput:
    @pytest.mark.parametrize(
        "key",
        [
            lambda row: row["missing"],
            lambda row: 42,
            lambda row: None,
        ],
    )
    def test_key_failure_uses_the_failure_policy(self, key: Any) -> None:
        """A key function that raises or returns a non-str: denied (closed), degraded."""
        limit, _ = limit_with_clock(key=key, on_exceed="raise")

        @limit.guard
        def act(row: dict[str, str]) -> str:
            return "acted"

        with capture_events() as events, pytest.raises(gr.errors.ActionLimitExceededError) as info:
            act({"merchant": "m"})
        assert info.value.degraded
        degraded = [e for e in events if isinstance(e, gr.instrumentation.LimitDegraded)]
        assert len(degraded) == 1
        assert degraded[0].policy == "closed"

    def test_the_key_function_runs_once_per_call(self) -> None:
        """A failing key function is called once, not again by a slower path."""
        calls = []

        def key(merchant: str) -> str:
            calls.append(merchant)
            raise KeyError(merchant)

        limit, _ = limit_with_clock(key=key)

        @limit.guard
        def act(merchant: str) -> str:
            return "acted"

        assert act("m") is None
        assert calls == ["m"]

    def test_key_failure_fail_open(self) -> None:
        """With on_error='open' the action goes ahead and is reported."""
        limit, _ = limit_with_clock(key=lambda row: row["missing"], on_error="open")

        @limit.guard
        def act(row: dict[str, str]) -> str:
            return "acted"

        with capture_events() as events:
            assert act({}) == "acted"
        assert [e.kind for e in events] == ["limit.degraded"]

    @pytest.mark.parametrize("weight", [0, -1, 4])
    def test_weight_out_of_range_at_call_time(self, weight: int) -> None:
        """An int weight outside 1..max_actions is denied by the failure policy, not counted."""
        limit, _ = limit_with_clock(max_actions=3)
        assert not limit.allow(weight=weight)
        assert limit.remaining() == 3

    @pytest.mark.parametrize("weight", ["2", 1.5, True])
    def test_weight_of_a_wrong_type_passed_directly(self, weight: Any) -> None:
        """allow() and allow_async() with a weight that is not an int raise TypeError."""
        limit, _ = limit_with_clock(max_actions=3, on_error="open")
        with pytest.raises(TypeError, match="weight must be an int"):
            limit.allow(weight=weight)
        with pytest.raises(TypeError, match="weight must be an int"):
            asyncio.run(limit.allow_async(weight=weight))
        assert limit.remaining() == 3

    @pytest.mark.parametrize("key", [123, ["a"], b"a"])
    def test_key_of_a_wrong_type_passed_directly(self, key: Any) -> None:
        """allow() and allow_async() with a key that is not a str raise TypeError."""
        limit, _ = limit_with_clock(on_error="open")
        with pytest.raises(TypeError, match="key must be a str"):
            limit.allow(key)
        with pytest.raises(TypeError, match="key must be a str"):
            asyncio.run(limit.allow_async(key))
        assert limit.remaining() == 3

    def test_degraded_events_are_rate_limited(self) -> None:
        """A burst of degraded decisions sends one event, not one per decision."""
        limit, _ = limit_with_clock(key=lambda row: row["missing"])

        @limit.guard
        def act(row: dict[str, str]) -> None:
            return None

        with capture_events() as events:
            for _ in range(50):
                act({})
        assert len(events) == 1


class TestInspectionAndKillSwitch:
    def test_pause_denies_everything_until_resume(self) -> None:
        """pause() is a kill switch: every action is denied until resume()."""
        limit, _ = limit_with_clock(max_actions=100, on_exceed="raise")
        with capture_events() as events:
            limit.pause("incident 42")
            assert limit.paused
            assert limit.remaining() == 0
            with pytest.raises(gr.errors.ActionLimitExceededError, match="paused") as info:
                limit.allow()
            assert info.value.paused
            limit.resume()
        assert limit.allow()
        assert limit.remaining() == 99
        switches = [e for e in events if isinstance(e, gr.instrumentation.PauseChanged)]
        assert [(e.source.kind, e.source.name, e.paused) for e in switches] == [
            ("limit", "test", True),
            ("limit", "test", False),
        ]
        assert switches[0].reason == "incident 42"

    def test_remaining_is_the_tightest_window(self) -> None:
        """With several windows, remaining is the smallest budget left."""
        clock = Clock()
        limit = gr.ActionLimit(
            "sms",
            windows=[gr.limits.Window(3, "1m"), gr.limits.Window(5, "1d")],
            store=gr.limits.MemoryStore(clock=clock),
        )
        assert [limit.allow() for _ in range(4)] == [True, True, True, False]
        clock.advance(70)
        assert limit.remaining() == 2
        assert [limit.allow() for _ in range(3)] == [True, True, False]


class TestEvents:
    def test_exceeded_once_per_sub_window_and_near_once(self) -> None:
        """The exceeded alert is sent once per key and sub-window; near once per crossing."""
        limit, clock = limit_with_clock(max_actions=5, per="10s", near=0.6, key=lambda k: k)
        with capture_events() as events:
            for _ in range(10):
                limit.allow("merchant-7")
            clock.advance(1.0)
            limit.allow("merchant-7")
        kinds = [e.kind for e in events]
        assert kinds == ["limit.near", "limit.exceeded", "limit.exceeded"]
        for event in events:
            assert "merchant-7" not in str(event.to_fields())

    def test_otel_counters(self) -> None:
        """allowed / denied / degraded are counted by the OpenTelemetry hook."""
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        reader = InMemoryMetricReader()
        gr.configure(
            hooks=[
                gr.instrumentation.OpenTelemetryHook(
                    meter_provider=MeterProvider(metric_readers=[reader])
                )
            ]
        )
        limit, _ = limit_with_clock(max_actions=2, key=lambda row: row["m"])

        @limit.guard
        def act(row: dict[str, str]) -> None:
            return None

        for row in ({"m": "a"}, {"m": "a"}, {"m": "a"}, {"m": "a"}, {}):
            act(row)
        data = reader.get_metrics_data()
        assert data is not None
        totals = {
            metric.name: sum(p.value for p in metric.data.data_points)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        }
        assert totals["guardrail.limit.allowed"] == 2
        assert totals["guardrail.limit.denied"] == 3
        assert totals["guardrail.limit.degraded"] == 1

    def test_limits_count_through_the_hooks(self) -> None:
        """Limits count through the hooks, never through OpenTelemetry's private state."""
        import pathlib

        import guardrail._limits
        import guardrail._redis

        for module in (guardrail._limits, guardrail._redis):
            source = pathlib.Path(str(module.__file__)).read_text()
            assert "opentelemetry" not in source


def make_call(inputs: Any, act: Any) -> Call:
    return testing.make_call(inputs, act, model=MODEL, guard="g")


class TestMechanism:
    def test_is_a_limiter(self) -> None:
        """An ActionLimit plays the guard's limiter role, and no other."""
        limit, _ = limit_with_clock()
        assert isinstance(limit, gr.mechanisms.Limiter)
        assert not isinstance(
            limit,
            (
                gr.mechanisms.InputMonitor,
                gr.mechanisms.Decider,
                gr.mechanisms.Assigner,
                gr.mechanisms.Recorder,
            ),
        )

    def test_positive_decisions_are_actions(self) -> None:
        """Only positive decisions count; the one past the limit is vetoed with a reason."""
        limit, _ = limit_with_clock(max_actions=1, key=lambda row: row["merchant"])
        row = {"merchant": "m1"}
        negative = make_call(row, False)
        limit.acquire_call(negative)
        first, second = make_call(row, True), make_call(row, True)
        limit.acquire_call(first)
        limit.acquire_call(second)
        assert negative.act is False
        assert negative.reasons == []
        assert first.act is True
        assert second.act is False
        assert second.reasons == ["limit:test"]

    def test_batch_of_row_mappings(self) -> None:
        """A batch is counted row by row, in order, per key; denied rows are vetoed."""
        limit, _ = limit_with_clock(max_actions=1, key=lambda row: row["merchant"])
        rows = [{"merchant": m} for m in ("a", "a", "b", "c", "b")]
        call = make_call(rows, np.array([True, True, True, False, True]))
        limit.acquire_call(call)
        assert call.act.tolist() == [True, False, True, False, False]  # type: ignore[union-attr]
        assert call.reasons == ["limit:test"]

    def test_batch_of_a_2d_array(self) -> None:
        """Rows of a 2-D array reach the key function."""
        limit, _ = limit_with_clock(max_actions=2, key=lambda row: str(int(row[0])))
        inputs = np.array([[1.0, 0.3], [1.0, 0.1], [1.0, 0.9], [2.0, 0.2]])
        call = make_call(inputs, np.ones(4, dtype=np.bool_))
        limit.acquire_call(call)
        assert call.act.tolist() == [True, True, False, True]  # type: ignore[union-attr]

    def test_report_in_a_guard_does_not_veto(self) -> None:
        """Under on_exceed="report" the decision stays positive."""
        limit, _ = limit_with_clock(max_actions=1, on_exceed="report")
        calls = [make_call({}, True) for _ in range(3)]
        for call in calls:
            limit.acquire_call(call)
        assert [c.act for c in calls] == [True, True, True]

    def test_raise_in_a_guard(self) -> None:
        """With on_exceed='raise' the guard's call raises the PolicyError."""
        limit, _ = limit_with_clock(max_actions=1, on_exceed="raise")
        limit.acquire_call(make_call({}, True))
        with pytest.raises(gr.errors.ActionLimitExceededError):
            limit.acquire_call(make_call({}, True))

    def test_key_failure_marks_the_call_degraded(self) -> None:
        """A key function failing in a guard vetoes (closed) and marks the call degraded."""
        limit, _ = limit_with_clock(key=lambda row: row["missing"])
        call = make_call({}, True)
        limit.acquire_call(call)
        assert call.act is False
        assert call.degraded
        batch = make_call([{}, {}], np.array([True, False]))
        limit.acquire_call(batch)
        assert batch.act.tolist() == [False, False]
        assert batch.degraded

    def test_numpy_bool_scalar_decision(self) -> None:
        """A numpy bool scalar decision is one action, like a bool."""
        limit, _ = limit_with_clock(max_actions=1)
        first, second = make_call({}, np.bool_(True)), make_call({}, np.bool_(True))
        limit.acquire_call(first)
        limit.acquire_call(second)
        assert bool(first.act)
        assert not second.act
        assert second.reasons == ["limit:test"]

    def test_no_decision_no_count(self) -> None:
        """A call without a decision (act is None) is not an action."""
        limit, _ = limit_with_clock(max_actions=1)
        limit.acquire_call(make_call({}, None))  # type: ignore[arg-type]
        assert limit.remaining() == 1
