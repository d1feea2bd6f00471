"""Prediction, Threshold and Decision."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import guardrail as gr
from guardrail.testing import capture_events, deterministic

MODEL = gr.ModelRef(name="fraud", version="3.1.0", consumers=("card-blocker",))
OTHER = gr.ModelRef(name="fraud", version="3.2.0")


class TestPrediction:
    def test_carries_value_model_id_and_time(self) -> None:
        """A prediction knows its value, its model, an id and when it was made."""
        p = gr.Prediction(gr.Probability(0.9), MODEL)
        assert p.value == gr.Probability(0.9)
        assert p.model is MODEL
        assert p.id
        assert p.created_at == pytest.approx(__import__("time").time(), abs=5)

    def test_ids_are_unique(self) -> None:
        """Ten thousand predictions have ten thousand ids."""
        ids = {gr.Prediction(gr.Probability(0.5), MODEL).id for _ in range(10_000)}
        assert len(ids) == 10_000

    def test_ids_differ_after_fork(self) -> None:
        """A forked child does not repeat its parent's ids."""
        first = gr.Prediction(gr.Probability(0.5), MODEL).id
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.write(write, gr.Prediction(gr.Probability(0.5), MODEL).id.encode())
            os._exit(0)
        os.waitpid(pid, 0)
        child = os.read(read, 100).decode()
        assert child.split("-")[0] != first.split("-")[0]

    def test_deterministic_ids(self) -> None:
        """Inside testing.deterministic() ids restart at test-1."""
        with deterministic():
            assert gr.Prediction(gr.Probability(0.5), MODEL).id == "test-1"
            assert gr.Prediction(gr.Probability(0.5), MODEL).id == "test-2"

    def test_lineage(self) -> None:
        """A prediction can name the predictions it was computed from."""
        upstream = gr.Prediction(gr.Score(1.0), OTHER)
        p = gr.Prediction(gr.Probability(0.3), MODEL, upstream=(upstream,))
        assert p.upstream == (upstream,)
        back = gr.Prediction.from_dict(p.to_dict())
        assert back == p

    def test_round_trips_batches_and_infinities(self) -> None:
        """Batches and infinite log-odds survive to_dict/from_dict."""
        p = gr.Prediction(gr.LogOdds(np.array([-math.inf, 0.0, 2.5])), MODEL)
        back = gr.Prediction.from_dict(p.to_dict())
        assert back == p
        import json

        json.dumps(p.to_dict(), allow_nan=False)

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda d: d | {"extra": 1},
            lambda d: {k: v for k, v in d.items() if k != "id"},
            lambda d: d | {"value": {"scale": "percent", "value": 3}},
            lambda d: d | {"value": {"scale": "probability", "value": 1.5}},
            lambda d: d | {"value": {"scale": "probability", "value": "x"}},
            lambda d: d | {"created_at": "now"},
            lambda d: d | {"upstream": {}},
        ],
    )
    def test_from_dict_refuses_malformed(self, mutate: object) -> None:
        """Every malformed field is a FormatError."""
        data = gr.Prediction(gr.Probability(0.3), MODEL).to_dict()
        with pytest.raises(gr.errors.FormatError):
            gr.Prediction.from_dict(mutate(data))  # type: ignore[operator]

    def test_refuses_raw_floats(self) -> None:
        """A prediction of a bare float is a ScaleError."""
        with pytest.raises(gr.errors.ScaleError):
            gr.Prediction(0.3, MODEL)  # type: ignore[type-var]
        with pytest.raises(gr.ConfigError):
            gr.Prediction(gr.Probability(0.3), "fraud")  # type: ignore[arg-type]


class TestConsume:
    def test_declared_consumer_gets_value(self) -> None:
        """A declared consumer receives the value and no event is emitted."""
        with capture_events() as events:
            value = gr.Prediction(gr.Probability(0.3), MODEL).consume(by="card-blocker")
        assert value == gr.Probability(0.3)
        assert events == []

    def test_undeclared_consumer_is_reported(self) -> None:
        """An undeclared consumer emits ConsumerUndeclared and still gets the value."""
        p = gr.Prediction(gr.Probability(0.3), MODEL)
        with capture_events() as events:
            assert p.consume(by="mailer") == gr.Probability(0.3)
        source = gr.mechanisms.Source("prediction", MODEL.name, None, MODEL)
        assert events == [
            gr.instrumentation.ConsumerUndeclared(
                source=source, consumer="mailer", prediction_id=p.id
            )
        ]

    def test_undeclared_consumer_refused_by_policy(self) -> None:
        """With on_undeclared_consumer='raise' the consumer is refused."""
        gr.configure(on_undeclared_consumer="raise")
        with pytest.raises(gr.errors.UndeclaredConsumerError, match="mailer"):
            gr.Prediction(gr.Probability(0.3), MODEL).consume(by="mailer")

    def test_bad_policy(self) -> None:
        """An unknown policy is a ConfigError."""
        with pytest.raises(gr.ConfigError):
            gr.configure(on_undeclared_consumer="ignore")  # type: ignore[arg-type]


class TestThreshold:
    def test_admits_scalar_and_batch(self) -> None:
        """admits() compares a scalar to a bool and a batch to a bool array."""
        t = gr.Threshold(0.5, scale=gr.Probability)
        assert t.admits(gr.Probability(0.5)) is True
        assert t.admits(gr.Probability(0.4)) is False
        out = t.admits(gr.Probability(np.array([0.1, 0.5, 0.9])))
        assert isinstance(out, np.ndarray)
        assert out.tolist() == [False, True, True]

    def test_direction_lower(self) -> None:
        """With direction '<=' low values pass."""
        t = gr.Threshold(-1.0, scale=gr.Score, direction="<=")
        assert t.admits(gr.Score(-2.0))
        assert not t.admits(gr.Score(0.0))

    def test_other_scale_is_type_error(self) -> None:
        """A LogOdds compared with a probability threshold is a ScaleError."""
        t = gr.Threshold(0.5, scale=gr.Probability)
        with pytest.raises(gr.errors.ScaleError, match="LogOdds"):
            t.admits(gr.LogOdds(0.1))  # type: ignore[arg-type]

    def test_value_must_be_on_scale(self) -> None:
        """A probability threshold of 1.5 or NaN is refused."""
        with pytest.raises(gr.errors.OutOfScaleError):
            gr.Threshold(1.5, scale=gr.Probability)
        with pytest.raises(gr.errors.OutOfScaleError):
            gr.Threshold(math.nan, scale=gr.LogOdds)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"scale": float},
            {"version": 0},
            {"version": True},
            {"origin": "magic"},
            {"direction": ">"},
            {"model": "fraud"},
        ],
    )
    def test_bad_configuration(self, kwargs: dict[str, object]) -> None:
        """Unknown scales, versions, origins, directions and models are refused."""
        fields: dict[str, object] = {"scale": gr.Probability} | kwargs
        with pytest.raises(gr.GuardrailError):
            gr.Threshold(0.5, **fields)  # type: ignore[arg-type]

    def test_decide(self) -> None:
        """decide() returns a Decision carrying threshold value and version."""
        t = gr.Threshold(0.8, scale=gr.Probability, model=MODEL, version=4)
        d = t.decide(gr.Prediction(gr.Probability(0.9), MODEL))
        assert d.act is True
        assert d.above is True
        assert d.threshold.version == 4
        assert d.to_dict()["threshold"]["value"] == 0.8

    def test_decide_refuses_other_model(self) -> None:
        """A threshold set for 3.1.0 does not decide on 3.2.0's predictions."""
        t = gr.Threshold(0.8, scale=gr.Probability, model=MODEL)
        with pytest.raises(gr.errors.ModelMismatchError, match=r"3\.2\.0"):
            t.decide(gr.Prediction(gr.Probability(0.9), OTHER))

    def test_decide_refuses_other_scale(self) -> None:
        """A threshold on probabilities does not decide on log-odds."""
        t = gr.Threshold(0.8, scale=gr.Probability)
        with pytest.raises(gr.errors.ScaleError):
            t.decide(gr.Prediction(gr.LogOdds(0.9), MODEL))  # type: ignore[arg-type]

    def test_batch_decision_to_dict(self) -> None:
        """A batch decision serializes its arrays as lists."""
        t = gr.Threshold(0.5, scale=gr.Probability)
        d = t.decide(gr.Prediction(gr.Probability(np.array([0.2, 0.7])), MODEL))
        assert d.to_dict()["act"] == [False, True]
