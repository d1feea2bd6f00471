"""Run every benchmark script and write the combined results to ``docs/benchmarks.md``.

Run: ``python benchmarks/run.py`` (every timing script: about 15 minutes on a
shared 2-core machine), ``python benchmarks/run.py --only guard`` (one script),
``--skip NAME`` to leave one out, ``--all`` to add the long statistical scripts
(``calibration``, ``spark``). The sections of scripts not run are kept on the
page as they were.

Each ``benchmarks/bench_*.py`` prints markdown tables (see ``_harness.py``):
medians, and ratios to a baseline or peer measured in the same run. A script
that fails or times out is reported on the page and the run goes on; the exit
status is 1 if any script failed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _harness import machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
#: Long statistical runs, not timing ratios: only with --all or --only.
SLOW = frozenset({"calibration", "spark"})
_SECTION = re.compile(
    r"<!-- bench:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->\n", re.S
)

HEADER = """# Benchmarks

What guardrail costs, measured by the scripts in `benchmarks/`. Every timed
figure comes from one harness (`benchmarks/_harness.py`): each case is timed in
rounds, a round runs the case and its baseline (or a whole group of cases) once
each in a shuffled order, and the ratio to the baseline is taken *in that
round*, so that load on the shared machine moves both together. The rounds
are split into 3 runs; a table gives the median time, the median and the
minimum of the per-round ratios, the median per-round difference, and the
highest load average seen. Work that stays on one thread is timed by that
thread's CPU time; work that waits (I/O, Redis, other threads or processes)
by wall time, and its figures move with load. Regenerate this page with:

```sh
python -m pip install -e '.[dev,bench]'
python benchmarks/run.py            # every timing script; --only NAME for one, --all for all
```
"""


def scripts(directory: Path = HERE) -> list[Path]:
    """The benchmark scripts, in name order."""
    return sorted(directory.glob("bench_*.py"))


def short_name(script: Path) -> str:
    """``bench_guard.py`` -> ``guard``."""
    return script.stem.removeprefix("bench_")


def run_one(script: Path, timeout: float) -> tuple[bool, str, float]:
    """Run one script: (succeeded, its markdown or the failure, seconds taken)."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        elapsed = time.perf_counter() - start
        return False, f"**Failed**: timed out after {timeout:.0f} s.\n", elapsed
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else "no output on stderr"
        return False, f"**Failed** (exit status {done.returncode}): `{last}`\n", elapsed
    own_machine = f"_{machine()}_"
    body = "\n".join(line for line in done.stdout.splitlines() if line.strip() != own_machine)
    return True, body.strip() + "\n", elapsed


def section(name: str, body: str, elapsed: float) -> str:
    """One script's section, with markers so that ``--only`` can replace it alone."""
    return (
        f"<!-- bench:{name} -->\n## {name}\n\n"
        f"`python benchmarks/bench_{name}.py` ({elapsed:.0f} s)\n\n{body}\n"
        f"<!-- /bench:{name} -->\n"
    )


def existing_sections(page: str) -> dict[str, str]:
    """The sections of a page this runner wrote before, by script name."""
    return {m["name"]: m.group(0) for m in _SECTION.finditer(page)}


def render(sections: dict[str, str], when: str) -> str:
    """The whole page: header, machine and date, then the sections in name order."""
    parts = [HEADER, f"_{machine()}; written {when}._\n"]
    parts.extend(sections[name] for name in sorted(sections))
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and write the page; 1 if any script failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this script (guard or bench_guard.py); repeatable",
    )
    parser.add_argument(
        "--skip", action="append", default=[], metavar="NAME", help="leave this script out"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"also run the long statistical scripts ({', '.join(sorted(SLOW))})",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the page to write")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds allowed per script (default 600)"
    )
    parser.add_argument("--dir", type=Path, default=HERE, help="where the bench_*.py scripts are")
    args = parser.parse_args(argv)

    found = scripts(args.dir)
    if args.only:
        wanted = {short_name(Path(n)) if n.endswith(".py") else n.removeprefix("bench_")
                  for n in args.only}  # fmt: skip
        unknown = wanted - {short_name(s) for s in found}
        if unknown:
            parser.error(f"no benchmark named {', '.join(sorted(unknown))}")
        found = [s for s in found if short_name(s) in wanted]
    else:
        skipped = {n.removesuffix(".py").removeprefix("bench_") for n in args.skip}
        if not args.all:
            skipped |= SLOW
        found = [s for s in found if short_name(s) not in skipped]

    page = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    # Sections of the scripts not run this time stay as they were.
    sections = existing_sections(page)
    failed = []
    for script in found:
        name = short_name(script)
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        ok, body, elapsed = run_one(script, args.timeout)
        if not ok:
            failed.append(name)
            print(f"  {script.name} failed: {body.strip()}", file=sys.stderr)
        else:
            print(f"  done in {elapsed:.0f} s", file=sys.stderr)
        sections[name] = section(name, body, elapsed)

    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(sections, when), encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
