"""Action limits inside guard(...): actions are positive decisions."""

from __future__ import annotations

import asyncio
import socket

import attrs
import numpy as np
import pytest

import guardrail as gr

MODEL = gr.ModelRef(name="fraud", version="3.1.0")
THRESHOLD = gr.Threshold(0.5, scale=gr.Probability, model=MODEL)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    gr.configure(hooks=[])


def block_card_limit(**kwargs: object) -> gr.ActionLimit:
    settings: dict[str, object] = {
        "max_actions": 2,
        "per": "1h",
        "key": lambda row: row["merchant"],
    }
    settings.update(kwargs)
    return gr.ActionLimit("block_card", **settings)  # type: ignore[arg-type]


class TestLimitInAGuard:
    def test_positive_decisions_past_the_limit_do_not_act(self) -> None:
        """The third positive decision for a merchant is vetoed; the prediction is unchanged."""
        limit = block_card_limit()

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit])
        def predict(row: dict[str, object]) -> float:
            return float(row["score"])  # type: ignore[arg-type]

        low = predict({"merchant": "m1", "score": 0.1})
        acts = [predict({"merchant": "m1", "score": 0.9}) for _ in range(3)]
        other = predict({"merchant": "m2", "score": 0.9})
        assert low.act is False
        assert low.reasons == ()
        assert [d.act for d in acts] == [True, True, False]
        assert acts[2].reasons == ("limit:block_card",)
        assert acts[2].prediction.value == gr.Probability(0.9)
        assert acts[2].above is True
        assert other.act is True
        assert limit.remaining("m1") == 0

    def test_a_batch_is_limited_row_by_row(self) -> None:
        """In a batch, positive rows are counted in order per key; the rest are vetoed."""
        limit = gr.ActionLimit(
            "block_card", max_actions=1, per="1h", key=lambda row: str(int(row[0]))
        )

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit])
        def predict(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
            return rows[:, 1]

        rows = np.array([[1.0, 0.9], [1.0, 0.8], [2.0, 0.2], [2.0, 0.7], [3.0, 0.6]])
        d = predict(rows)
        assert isinstance(d.act, np.ndarray)
        assert d.act.tolist() == [True, False, False, True, True]
        assert d.reasons == ("limit:block_card",)

    def test_raise_propagates_through_the_guard(self) -> None:
        """on_exceed='raise' is a policy: the guard lets ActionLimitExceededError through."""
        limit = block_card_limit(max_actions=1, on_exceed="raise")

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit])
        def predict(row: dict[str, object]) -> float:
            return 0.9

        predict({"merchant": "m"})
        with pytest.raises(gr.errors.ActionLimitExceededError):
            predict({"merchant": "m"})

    def test_an_unreachable_store_gives_a_degraded_no_action(self) -> None:
        """Redis down, fail closed: the decision does not act and says it is degraded."""
        import redis

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # nothing listens here
        store = gr.RedisStore(redis.Redis(host="127.0.0.1", port=port), namespace="guard")
        limit = block_card_limit(store=store)

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit])
        def predict(row: dict[str, object]) -> float:
            return 0.9

        d = predict({"merchant": "m"})
        assert d.act is False
        assert d.degraded is True
        assert d.reasons == ("limit:block_card",)

    def test_async_guard(self) -> None:
        """An async guard applies its limits too."""
        limit = block_card_limit(max_actions=1)

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit])
        async def predict(row: dict[str, object]) -> float:
            return 0.9

        async def main() -> list[object]:
            return [(await predict({"merchant": "m"})).act for _ in range(2)]

        assert asyncio.run(main()) == [True, False]

    def test_the_limit_is_part_of_the_guard_fingerprint(self) -> None:
        """A guard's configuration describes its limit; changing the cap changes it."""
        limit = block_card_limit()
        tighter = block_card_limit(max_actions=1)
        config = gr.GuardConfig(
            model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit]
        )
        described = config.to_dict()["mechanisms"][1]
        assert described["type"] == "ActionLimit"
        assert described["settings"]["windows"] == [
            {"max_actions": 2, "per": 3600.0, "buckets": 10}
        ]
        assert attrs.evolve(config, limits=[tighter]).fingerprint != config.fingerprint


class TestSeveralLimits:
    def test_a_denial_by_a_later_limit_refunds_the_earlier_ones(self) -> None:
        """An action a later limit denies is not taken, so earlier limits give its budget back."""
        per_merchant = block_card_limit(max_actions=5)
        overall = gr.ActionLimit("all_cards", max_actions=1, per="1h")

        @gr.guard(
            model=MODEL,
            returns=gr.Probability,
            threshold=THRESHOLD,
            limits=[per_merchant, overall],
        )
        def predict(row: dict[str, object]) -> float:
            return 0.9

        assert [predict({"merchant": "m"}).act for _ in range(3)] == [True, False, False]
        assert per_merchant.remaining("m") == 4
        assert overall.remaining() == 0

    def test_a_batch_refunds_only_the_rows_a_later_limit_denied(self) -> None:
        """In a batch, rows a later limit vetoes are refunded; rows that act stay counted."""
        per_merchant = gr.ActionLimit(
            "per_merchant", max_actions=5, per="1h", key=lambda row: str(int(row[0]))
        )
        overall = gr.ActionLimit("overall", max_actions=3, per="1h")

        @gr.guard(
            model=MODEL,
            returns=gr.Probability,
            threshold=THRESHOLD,
            limits=[per_merchant, overall],
        )
        def predict(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
            return rows[:, 1]

        rows = np.array([[1.0, 0.9], [2.0, 0.9], [1.0, 0.9], [1.0, 0.9], [2.0, 0.9]])
        d = predict(rows)
        assert isinstance(d.act, np.ndarray)
        assert d.act.tolist() == [True, True, True, False, False]
        assert per_merchant.remaining("1") == 3
        assert per_merchant.remaining("2") == 4

    def test_a_raise_partway_through_a_batch_refunds_the_whole_call(self) -> None:
        """A limit raising in a batch stops every action, so every limit gives its counts back."""
        per_merchant = gr.ActionLimit(
            "per_merchant", max_actions=5, per="1h", key=lambda row: str(int(row[0]))
        )
        overall = gr.ActionLimit("overall", max_actions=2, per="1h", on_exceed="raise")

        @gr.guard(
            model=MODEL,
            returns=gr.Probability,
            threshold=THRESHOLD,
            limits=[per_merchant, overall],
        )
        def predict(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
            return rows[:, 1]

        with pytest.raises(gr.errors.ActionLimitExceededError):
            predict(np.array([[1.0, 0.9], [1.0, 0.9], [1.0, 0.9]]))
        assert per_merchant.remaining("1") == 5
        assert overall.remaining() == 2

    def test_a_raise_partway_through_a_batch_refunds_a_single_limit(self) -> None:
        """With one limit, a raise on a batch's third row gives back the first two rows' counts."""
        limit = gr.ActionLimit(
            "block_card",
            max_actions=2,
            per="1h",
            key=lambda row: str(int(row[0])),
            on_exceed="raise",
        )

        @gr.guard(model=MODEL, returns=gr.Probability, threshold=THRESHOLD, limits=[limit])
        def predict(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
            return rows[:, 1]

        with pytest.raises(gr.errors.ActionLimitExceededError):
            predict(np.array([[1.0, 0.9], [1.0, 0.9], [1.0, 0.9]]))
        assert limit.remaining("1") == 2
        assert predict(np.array([[1.0, 0.9], [1.0, 0.9]])).act.tolist() == [True, True]  # type: ignore[union-attr]
