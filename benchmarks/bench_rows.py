"""Profile.from_rows on sparse rows: linear in rows times present values.

Rows hold a few of many features (a JSON event stream, say). The baseline is
the least any reader of such rows does: one pass grouping the present values
by key. Peak memory is taken with tracemalloc in a separate, untimed run.
"""

from __future__ import annotations

import random
import tracemalloc
from typing import Any

import guardrail as gr

ROWS = 1_000_000
FEATURES = 200
PRESENT = 5
OWN_KEYS = 16_000


def sparse_rows() -> list[dict[str, Any]]:
    """ROWS rows, each with PRESENT of FEATURES features (half numeric, half text)."""
    rng = random.Random(0)
    names = [f"f{j:03d}" for j in range(FEATURES)]
    words = ("FR", "DE", "ES")
    return [
        {
            names[k]: (rng.random() if k % 2 else words[k % 3])
            for k in rng.sample(range(FEATURES), PRESENT)
        }
        for _ in range(ROWS)
    ]


def group(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for row in rows:
        for key, value in row.items():
            column = out.get(key)
            if column is None:
                out[key] = [value]
            else:
                column.append(value)
    return out


def peak_mib(rows: list[dict[str, Any]]) -> float:
    tracemalloc.start()
    gr.Profile.from_rows(rows)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    from _harness import Suite, machine

    rows = sparse_rows()
    own = [{f"k{i}": float(i)} for i in range(OWN_KEYS)]
    suite = Suite(f"Profile.from_rows, sparse rows ({PRESENT} of {FEATURES} features present)")
    suite.time("group 1M rows' values by key (baseline)", lambda: group(rows), number=1, repeat=3)
    suite.time(
        "Profile.from_rows(1M sparse rows)",
        lambda: gr.Profile.from_rows(rows),
        number=1,
        repeat=3,
        baseline="group 1M rows' values by key (baseline)",
    )
    suite.time(
        "Profile.from_rows(16,000 rows, a key of its own each)",
        lambda: gr.Profile.from_rows(own),
        number=1,
        repeat=3,
        note="16,000 features",
    )
    print(f"_{machine()}_\n")
    print(suite.table())
    print()
    print("| memory | peak (tracemalloc) |")
    print("| --- | ---: |")
    print(f"| Profile.from_rows(1M sparse rows) | {peak_mib(rows):.0f} MiB |")
    print(f"| Profile.from_rows(16,000 rows, a key each) | {peak_mib(own):.0f} MiB |")


if __name__ == "__main__":
    main()
