"""Durations: the one reader of "30s", "5m", "1h" for every length-of-time setting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import guardrail as gr


class TestParseDuration:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1.5h", 5400.0),
            ("d", 86400.0), ("2w", 1209600.0), (" 250ms ", 0.25), ("90 s", 90.0),
        ],
    )  # fmt: skip
    def test_reads_number_and_unit(self, text: str, seconds: float) -> None:
        """A string is a number (or nothing, meaning one) and a unit."""
        assert gr.parse_duration(text) == seconds

    @pytest.mark.parametrize("seconds", [2, 2.5, 1e-3, 10**6])
    def test_reads_seconds(self, seconds: float) -> None:
        """A number is seconds."""
        assert gr.parse_duration(seconds) == float(seconds)

    @pytest.mark.parametrize(
        "value",
        ["", "1", "1x", "h1", "-1h", "1e3s", "1H", "0s", 0, -1, math.inf, math.nan, True, None,
         [1], 10**400, "9" * 400 + "w"],
    )  # fmt: skip
    def test_refuses_the_rest(self, value: object) -> None:
        """Anything else, zero, negative and infinite durations are ConfigErrors."""
        with pytest.raises(gr.ConfigError):
            gr.parse_duration(value)

    def test_names_the_setting(self) -> None:
        """The error names the setting that was being read."""
        with pytest.raises(gr.ConfigError, match="ttl"):
            gr.parse_duration("soon", name="ttl")

    @given(
        st.one_of(
            st.text(),
            st.from_regex(r"\s*\d{0,400}(\.\d{0,20})?\s*(ms|s|m|h|d|w|x)?\s*"),
            st.integers(),
            st.floats(),
            st.booleans(),
            st.none(),
            st.binary(),
            st.lists(st.integers(), max_size=2),
        )
    )
    def test_raises_only_config_error(self, value: object) -> None:
        """Whatever it is given, it returns positive finite seconds or raises ConfigError."""
        try:
            seconds = gr.parse_duration(value)
        except gr.ConfigError:
            return
        assert isinstance(seconds, float)
        assert 0.0 < seconds < math.inf
