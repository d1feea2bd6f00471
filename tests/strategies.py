"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

import guardrail as gr

CATEGORIES = ("FR", "DE", "US", "GB", "IT", "ES", "NL", "PL")

REFERENCE = gr.Profile.from_columns(
    {
        "amount": np.linspace(-50.0, 150.0, 2_001),
        "count": np.arange(2_001, dtype=np.int64) % 17,
        "country": np.array([CATEGORIES[i % 5] for i in range(2_001)], dtype=object),
    },
    heavy_hitters=4,
)

numbers = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.none(),
    st.integers(min_value=-1000, max_value=1000),
)
categories = st.one_of(st.sampled_from(CATEGORIES), st.text(max_size=3), st.none(), st.just(7))


@st.composite
def columns(draw: st.DrawFn, max_rows: int = 40) -> dict[str, list[Any]]:
    """Columns for REFERENCE's features, with bad values mixed in."""
    rows = draw(st.integers(min_value=0, max_value=max_rows))
    return {
        "amount": draw(st.lists(numbers, min_size=rows, max_size=rows)),
        "count": draw(st.lists(numbers, min_size=rows, max_size=rows)),
        "country": draw(st.lists(categories, min_size=rows, max_size=rows)),
    }


@st.composite
def serving_profiles(draw: st.DrawFn) -> gr.Profile:
    """A profile on REFERENCE's layout."""
    return gr.Profile.from_columns(draw(columns()), like=REFERENCE)
