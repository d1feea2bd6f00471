"""Score, LogOdds and Probability."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import guardrail as gr


class TestProbability:
    def test_holds_a_float_in_unit_interval(self) -> None:
        """A probability keeps its float and says it is not a batch."""
        p = gr.Probability(0.25)
        assert p.value == 0.25
        assert not p.is_batch

    @pytest.mark.parametrize("bad", [-0.01, 1.7, math.inf, -math.inf])
    def test_refuses_values_outside_unit_interval(self, bad: float) -> None:
        """Values outside [0, 1] raise OutOfScaleError naming the value."""
        with pytest.raises(gr.errors.OutOfScaleError, match="must lie in"):
            gr.Probability(bad)

    def test_refuses_nan(self) -> None:
        """NaN is refused with a ValueError."""
        with pytest.raises(ValueError, match="nan"):
            gr.Probability(math.nan)

    @pytest.mark.parametrize("bad", ["0.3", None, True, [0.3], object()])
    def test_refuses_non_numbers(self, bad: object) -> None:
        """Strings, None, booleans and lists are a ScaleError (a TypeError)."""
        with pytest.raises(TypeError):
            gr.Probability(bad)  # type: ignore[type-var]

    def test_accepts_ints_and_numpy_scalars(self) -> None:
        """0, 1 and numpy scalars become plain floats."""
        assert gr.Probability(1).value == 1.0
        assert type(gr.Probability(np.float32(0.5)).value) is float
        assert gr.Probability(np.int64(0)).value == 0.0

    def test_batch_is_copied_and_read_only(self) -> None:
        """A batch copy cannot be changed through the caller's array."""
        raw = np.array([0.1, 0.9])
        p = gr.Probability(raw)
        raw[0] = 0.5
        assert p.value[0] == 0.1
        assert p.is_batch
        with pytest.raises(ValueError, match="read-only"):
            p.value[0] = 0.2

    def test_batch_with_nan_names_the_element(self) -> None:
        """A NaN in a batch is reported with its index."""
        with pytest.raises(gr.errors.OutOfScaleError, match="element 2"):
            gr.Probability(np.array([0.1, 0.2, np.nan]))

    def test_batch_out_of_range(self) -> None:
        """A batch element above 1 is refused."""
        with pytest.raises(gr.errors.OutOfScaleError, match="element 1"):
            gr.Probability(np.array([0.1, 1.5]))

    @pytest.mark.parametrize(
        ("array", "message"),
        [
            (np.zeros((2, 2)), "1-D"),
            (np.array(["a"]), "dtype"),
            (np.array([True]), "dtype"),
            (np.array([0.1], dtype=object), "dtype"),
        ],
    )
    def test_bad_batches(self, array: np.ndarray, message: str) -> None:  # type: ignore[type-arg]
        """2-D, string, bool and object arrays are refused clearly."""
        with pytest.raises(gr.GuardrailError, match=message):
            gr.Probability(array)

    def test_an_empty_batch_is_a_batch_of_no_rows(self) -> None:
        """An idle micro-batch scores no rows: an empty batch is valid on every scale."""
        for scale in (gr.Probability, gr.LogOdds, gr.Score):
            assert scale(np.array([])).value.shape == (0,)

    def test_batch_edges(self) -> None:
        """0, -0.0, 1 and the smallest numbers are probabilities; just above 1 is not."""
        edges = np.array([0.0, -0.0, 1.0, 5e-324, np.nextafter(1.0, 0.0)])
        assert gr.Probability(edges).value.tolist() == edges.tolist()
        for bad in (np.nextafter(1.0, 2.0), -5e-324, np.inf, -np.inf, np.nan):
            with pytest.raises(gr.errors.OutOfScaleError):
                gr.Probability(np.array([0.5, bad]))

    @given(st.floats(allow_nan=True, allow_infinity=True))
    def test_batch_accepts_exactly_the_unit_interval(self, x: float) -> None:
        """A batch holding x is accepted exactly when 0 <= x <= 1, as a scalar is."""
        if 0.0 <= x <= 1.0:
            assert gr.Probability(np.array([0.5, x])).value[1] == x
        else:
            with pytest.raises(gr.errors.OutOfScaleError):
                gr.Probability(np.array([0.5, x]))

    def test_int_batch_becomes_float(self) -> None:
        """An integer array of 0s and 1s is a valid probability batch."""
        assert gr.Probability(np.array([0, 1])).value.dtype == np.float64

    def test_has_no_arithmetic(self) -> None:
        """Probabilities do not add."""
        with pytest.raises(TypeError):
            gr.Probability(0.1) + gr.Probability(0.2)  # type: ignore[operator]

    def test_no_implicit_float(self) -> None:
        """float() does not silently drop the scale."""
        with pytest.raises(TypeError):
            float(gr.Probability(0.3))  # type: ignore[arg-type]

    def test_to_log_odds_ends(self) -> None:
        """0 and 1 convert to -inf and +inf; 0.5 to 0."""
        assert gr.Probability(0.0).to_log_odds().value == -math.inf
        assert gr.Probability(1.0).to_log_odds().value == math.inf
        assert gr.Probability(0.5).to_log_odds().value == 0.0

    def test_equality_and_hash(self) -> None:
        """Equal scalars are equal and hash alike; other scales are never equal."""
        assert gr.Probability(0.3) == gr.Probability(0.3)
        assert hash(gr.Probability(0.3)) == hash(gr.Probability(0.3))
        assert gr.Probability(0.5) != gr.LogOdds(0.5)  # type: ignore[comparison-overlap]
        batch = gr.Probability(np.array([0.1, 0.2]))
        assert batch == gr.Probability(np.array([0.1, 0.2]))
        with pytest.raises(TypeError, match="not hashable"):
            hash(batch)

    def test_is_frozen(self) -> None:
        """A value cannot be changed after creation."""
        p = gr.Probability(0.3)
        with pytest.raises(AttributeError):
            p.value = 0.4  # type: ignore[misc]


class TestLogOdds:
    def test_adds_and_scales(self) -> None:
        """Log-odds add, subtract, negate and scale by a real number."""
        assert (gr.LogOdds(1.0) + gr.LogOdds(2.0)).value == 3.0
        assert (gr.LogOdds(1.0) - gr.LogOdds(2.0)).value == -1.0
        assert (gr.LogOdds(1.5) * 2).value == 3.0
        assert (2 * gr.LogOdds(1.5)).value == 3.0
        assert (-gr.LogOdds(1.5)).value == -1.5

    def test_mixing_scales_is_a_type_error(self) -> None:
        """Adding a probability to log-odds raises ScaleError, a TypeError."""
        with pytest.raises(gr.errors.ScaleError, match="different scales"):
            gr.LogOdds(1.0) + gr.Probability(0.3)  # type: ignore[operator]
        with pytest.raises(TypeError):
            gr.LogOdds(1.0) - gr.Score(0.3)  # type: ignore[operator]

    def test_multiplying_by_log_odds_is_refused(self) -> None:
        """Log-odds times log-odds has no meaning."""
        with pytest.raises(gr.errors.ScaleError):
            gr.LogOdds(1.0) * gr.LogOdds(2.0)  # type: ignore[operator]

    def test_infinities_allowed_nan_refused(self) -> None:
        """±inf are certain events; NaN is refused, also when inf - inf makes one."""
        assert gr.LogOdds(math.inf).to_probability().value == 1.0
        assert gr.LogOdds(-math.inf).to_probability().value == 0.0
        with pytest.raises(gr.errors.OutOfScaleError):
            gr.LogOdds(math.nan)
        with pytest.raises(gr.errors.OutOfScaleError):
            gr.LogOdds(math.inf) + gr.LogOdds(-math.inf)

    def test_extreme_values_convert_without_overflow(self) -> None:
        """Very large log-odds convert exactly, scalar and batch, with no warning."""
        assert gr.LogOdds(-1000.0).to_probability().value == 0.0
        assert gr.LogOdds(1000.0).to_probability().value == 1.0
        batch = gr.LogOdds(np.array([-1000.0, 0.0, 1000.0])).to_probability()
        assert batch.value.tolist() == [0.0, 0.5, 1.0]

    def test_small_probabilities_keep_precision(self) -> None:
        """log-odds of -30 is about 9.4e-14, not 0."""
        p = gr.LogOdds(-30.0).to_probability().value
        assert p == pytest.approx(math.exp(-30) / (1 + math.exp(-30)), rel=1e-12)

    def test_batch_nan(self) -> None:
        """A NaN inside a log-odds batch names its index."""
        with pytest.raises(gr.errors.OutOfScaleError, match="element 0"):
            gr.LogOdds(np.array([np.nan, 1.0]))

    @given(st.floats(min_value=-700, max_value=20))
    def test_round_trip(self, x: float) -> None:
        """LogOdds -> Probability -> LogOdds returns where it started.

        Above log-odds of about 20 a float64 probability is too close to 1 to
        hold the difference, so that end is not expected to round-trip.
        """
        back = gr.LogOdds(x).to_probability().to_log_odds().value
        assert back == pytest.approx(x, rel=1e-6, abs=1e-9)

    def test_batch_conversion_matches_scalar(self) -> None:
        """Vectorized conversion gives the scalar results element by element."""
        xs = np.linspace(-40, 40, 101)
        batch = gr.LogOdds(xs).to_probability().value
        scalars = [gr.LogOdds(float(x)).to_probability().value for x in xs]
        np.testing.assert_allclose(batch, scalars, rtol=1e-12)
        back = gr.Probability(batch).to_log_odds().value
        near = xs <= 20  # see test_round_trip for the upper end
        np.testing.assert_allclose(back[near], xs[near], rtol=1e-6)


class TestScore:
    def test_finite_only(self) -> None:
        """A score is any finite number."""
        assert gr.Score(-12.5).value == -12.5
        with pytest.raises(gr.errors.OutOfScaleError):
            gr.Score(math.inf)
        with pytest.raises(gr.errors.OutOfScaleError, match="element 1"):
            gr.Score(np.array([1.0, np.inf]))

    def test_has_no_conversion(self) -> None:
        """A score does not know its calibration."""
        assert not hasattr(gr.Score(1.0), "to_probability")
