"""The ``guardrail`` command line.

Exit statuses (also in ``guardrail --help``):

- 0: done; no difference, no alert.
- 1: found something: ``diff`` saw a difference, ``compare`` crossed an alert threshold.
- 2: usage error: unknown command or bad arguments.
- 3: input error: a missing or unreadable file, malformed JSON, a document of
  the wrong kind or of an unknown format version, a reader that is not installed.
- 4: output error: a result file could not be written.
- 70: internal error: a bug in guardrail (the message says what to report).
- 130: interrupted.

Errors are one line on stderr, ``guardrail: error: ...``, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

from .._errors import ConfigError, FormatError

__all__ = [
    "EXIT_FOUND",
    "EXIT_INTERNAL",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTPUT",
    "EXIT_USAGE",
    "main",
]

EXIT_OK: Final = 0
EXIT_FOUND: Final = 1
EXIT_USAGE: Final = 2
EXIT_INPUT: Final = 3
EXIT_OUTPUT: Final = 4
EXIT_INTERNAL: Final = 70
EXIT_INTERRUPTED: Final = 130

_EPILOG: Final = """exit statuses:
  0    done; no difference, no alert
  1    a difference (diff) or an alert (compare) was found
  2    usage error
  3    input error: missing file, malformed JSON, unknown format or version
  4    output error: a result file could not be written
  70   internal error: a bug in guardrail, please report it
  130  interrupted
"""


class InputError(Exception):
    """A file the user gave cannot be used; the message says why, in one line."""


class OutputError(Exception):
    """A result could not be written; the message says why, in one line."""


class UsageError(Exception):
    """Arguments that parse but cannot be used together; the message says why."""


# -- reading documents ------------------------------------------------------------------


def read_json(path: str) -> Any:
    """The JSON document in *path*, or an :class:`InputError` that names the problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply") from None
    except ValueError as e:  # an integer of thousands of digits, say
        raise InputError(f"{path}: malformed JSON: {e}") from None
    except MemoryError:
        raise InputError(f"{path}: too large to read") from None


def _describe_kind(data: object) -> str:
    """'config' or 'model' for a guard configuration or a model reference."""
    from .._model import FORMAT as MODEL_FORMAT

    if isinstance(data, Mapping) and "mechanisms" in data:
        return "config"
    if isinstance(data, Mapping) and data.get("format") == MODEL_FORMAT:
        return "model"
    raise FormatError(
        "neither a guard configuration (GuardConfig.to_dict()) nor a model reference "
        "(ModelRef.to_json())"
    )


def _check_config(data: Mapping[str, Any]) -> None:
    from .._guard_config import check_description

    check_description(data)


def read_diffable(path: str) -> tuple[str, Mapping[str, Any]]:
    """A guard configuration or model reference from *path*, checked: (kind, data)."""
    from .._model import ModelRef

    data = read_json(path)
    try:
        kind = _describe_kind(data)
        if kind == "config":
            _check_config(data)
        else:
            ModelRef.from_document(data)
            data = data["model"]  # compared field by field
    except (FormatError, ConfigError) as e:
        raise InputError(f"{path}: {e}") from None
    return kind, data


# -- commands ---------------------------------------------------------------------------


def _diff(args: argparse.Namespace) -> int:
    from .._guard_config import diff

    kind_a, a = read_diffable(args.a)
    kind_b, b = read_diffable(args.b)
    if kind_a != kind_b:
        names = {"config": "a guard configuration", "model": "a model reference"}
        raise InputError(f"{args.a} is {names[kind_a]} but {args.b} is {names[kind_b]}")
    changes = diff(a, b)
    print(changes, file=args.out)
    return EXIT_FOUND if changes else EXIT_OK


def _read_data(path: str, args: argparse.Namespace) -> Any:
    """The data file at *path*, read for profiling (errors become InputError)."""
    from .files import read_data

    try:
        return read_data(
            path,
            names=_split(args.names),
            text_columns=_split(args.text) or (),
            progress=sys.stderr,
        )
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (FormatError, ConfigError) as e:
        raise InputError(f"{path}: {e}") from None
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def _profile_of(path: str, data: Any, args: argparse.Namespace, like: Any = None) -> Any:
    from .._profile import Profile

    try:
        if data.arrow is not None:
            return Profile.from_arrow(data.arrow, like=like, bins=args.bins)
        return Profile.from_columns(data.columns, like=like, bins=args.bins)
    except (FormatError, ConfigError) as e:
        raise InputError(f"{path}: {e}") from None
    except (UnicodeError, ValueError, TypeError, OverflowError) as e:
        # Data a reader let through but that cannot be profiled (a Parquet text
        # column that is not UTF-8, say) is an input error too.
        raise InputError(f"{path}: cannot profile the data ({type(e).__name__})") from None


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None


def _profile(args: argparse.Namespace) -> int:
    like = None if args.like is None else _read_profile(args.like)
    data = _read_data(args.data, args)
    profile = _profile_of(args.data, data, args, like=like)
    _write(args.output, profile.to_json())
    numeric = sum(1 for f in profile if f.kind == "numeric")
    print(
        f"{args.output}: {data.rows:,} rows, {len(profile)} features "
        f"({numeric} numeric, {len(profile) - numeric} categorical); "
        f"schema {profile.schema.fingerprint[:12]}",
        file=args.out,
    )
    for name, reason in profile.underutilized():
        print(f"underutilized: {name} ({reason.replace('_', ' ')})", file=args.out)
    return EXIT_OK


#: Data files ``guardrail profile`` reads: given where a profile is expected, a hint.
_DATA_SUFFIXES: Final = (".csv", ".tsv", ".npy", ".parquet")


def _profile_first(path: str) -> str:
    """The fix for a data file given where a profile JSON is expected."""
    return f"build a profile from it first: guardrail profile {path} -o {Path(path).stem}.json"


def _read_profile(path: str) -> Any:
    from .._profile import Profile

    if path.lower().endswith(_DATA_SUFFIXES):
        raise InputError(f"{path}: a data file, not a profile JSON; {_profile_first(path)}")
    try:
        data = read_json(path)
    except InputError as e:
        if "malformed JSON" in str(e):
            raise InputError(f"{e} (if it is a data file, {_profile_first(path)})") from None
        raise
    try:
        return Profile.from_dict(data)
    except (FormatError, ConfigError) as e:
        raise InputError(f"{path}: {e}") from None


def _compare(args: argparse.Namespace) -> int:
    from .._drift import compare
    from .._errors import ProfileMismatchError
    from .report import Report, profile_violations

    reference = _read_profile(args.reference)
    if (args.serving is None) == (args.prometheus is None):
        raise InputError("give either SERVING or --prometheus URL (with --model)")
    if args.prometheus is not None:
        serving = _fleet_profile(reference, args)
        args.serving = f"{args.prometheus} ({args.model})"
    elif args.serving.lower().endswith(".json"):
        serving = _read_profile(args.serving)
    else:
        data = _read_data(args.serving, args)
        absent = [name for name in reference.names if name not in data.names]
        if absent:
            print(
                f"guardrail: warning: {args.serving} lacks {', '.join(absent)}: counted as missing",
                file=sys.stderr,
            )
        serving = _profile_of(args.serving, data, args, like=reference)
    try:
        report = compare(reference, serving)
    except ProfileMismatchError as e:
        raise InputError(
            f"{args.serving} does not match the reference {args.reference}: {e}; build the "
            f"serving profile on the reference's layout: guardrail profile DATA --like "
            f"{args.reference} -o {Path(args.serving).name} (or give compare the data file)"
        ) from None
    if args.html is not None:
        page = Report.from_skew(
            report,
            reference=reference,
            serving=serving,
            title=f"guardrail compare: {Path(args.serving).name} vs {Path(args.reference).name}",
        )
        _write(args.html, page.to_html())
    if args.json:
        print(report.to_json(), file=args.out)
    else:
        print(report.to_text(), file=args.out)
        for (feature, problem), count in sorted(profile_violations(reference, serving).items()):
            print(f"schema: {feature}: {count:,} {problem.replace('_', ' ')}", file=args.out)
        if args.html is not None:
            print(f"report: {Path(args.html).resolve()}", file=args.out)
    failing = ("warn", "alert") if args.fail_on == "warn" else ("alert",)
    return EXIT_FOUND if report.severity in failing else EXIT_OK


def _config(args: argparse.Namespace) -> int:
    import importlib

    from .._guard import guard_of
    from .._model import ModelRef

    module_name, _, attribute = args.target.partition(":")
    if not module_name or not attribute:
        raise InputError(f"{args.target}: expected MODULE:FUNCTION, e.g. myservice.scoring:predict")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(
            f"{args.target}: cannot import {module_name} ({e}); run from the directory "
            "that holds it, or set PYTHONPATH"
        ) from None
    finally:
        sys.path.pop(0)
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InputError(f"{args.target}: {module_name} has no {attribute}") from None
    if isinstance(target, ModelRef):
        text = target.to_json()
        what = f"model {target.name} {target.version}"
    else:
        try:
            guarded = guard_of(target)
        except ConfigError:
            raise InputError(
                f"{args.target}: neither a function decorated with @guardrail.guard nor a ModelRef"
            ) from None
        text = guarded.config.to_json()
        what = f"guard {guarded.name}, fingerprint {guarded.fingerprint[:12]}"
    _write(args.output, text + "\n")
    print(f"{args.output}: {what}", file=args.out)
    return EXIT_OK


def _fleet_profile(reference: Any, args: argparse.Namespace) -> Any:
    """The fleet's serving profile, summed by Prometheus."""
    from .._errors import ConfigError, MetricsQueryError
    from .._fleet import fleet_profile
    from .._model import ModelRef

    if not args.model:
        raise InputError("--prometheus needs --model NAME")
    model: Any = args.model
    if args.model_version is not None:
        model = ModelRef(name=args.model, version=args.model_version)
    try:
        return fleet_profile(reference, args.prometheus, model=model, since=args.since)
    except (MetricsQueryError, ConfigError) as e:
        raise InputError(f"{args.prometheus}: {e}") from None


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    if args.seed < 0:
        raise UsageError(f"--seed: must be 0 or more, got {args.seed}")
    try:
        return run(
            out=args.out,
            requests=args.requests,
            report=args.report,
            directory=args.directory,
            seed=args.seed,
        )
    except OSError as e:  # the report could not be written
        where = args.report or args.directory
        raise OutputError(f"{where}: cannot write: {e.strerror or e}") from None


def _demo_requests(text: str) -> int:
    from .demo import MIN_REQUESTS

    value = _positive(text)
    if value < MIN_REQUESTS:
        raise argparse.ArgumentTypeError(f"the demo serves at least {MIN_REQUESTS}, got {value}")
    return value


def _directory(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    return path


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the usage is one ``--help`` away."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = _Parser(
        prog="guardrail",
        description="Typed predictions and guardrails around ML models in production.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"guardrail {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    demo = commands.add_parser(
        "demo",
        help="run a simulated fraud-scoring service with every guardrail on",
        description="Run a simulated fraud-scoring service with every guardrail on: "
        "drift, an attack on the action limit, delayed labels, a holdout arm and a "
        "dynamic threshold. Prints what each guardrail caught and writes an HTML report.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--requests",
        type=_demo_requests,
        default=40_000,
        help="requests to serve, at least 100 (default 40000)",
    )
    demo.add_argument(
        "--out",
        dest="directory",
        type=_directory,
        metavar="DIR",
        help="directory for the HTML report, created if needed "
        "(default: a new temporary directory, printed)",
    )
    demo.add_argument(
        "--report",
        metavar="PATH",
        help="the HTML report's file path (instead of --out)",
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.set_defaults(run=_demo)

    reading = _Parser(add_help=False)
    reading.add_argument(
        "--names", metavar="A,B,...", help="column names for a 2-D .npy array (comma-separated)"
    )
    reading.add_argument(
        "--text",
        metavar="A,B,...",
        help="CSV columns to keep as text even where they look like numbers",
    )
    reading.add_argument(
        "--bins", type=_positive, default=20, help="quantile bins per numeric feature (default 20)"
    )

    profile = commands.add_parser(
        "profile",
        parents=[reading],
        help="build a reference profile from a data file",
        description="Build a reference profile (per-feature bins, moments and category "
        "counts; versioned JSON) from a CSV, .npy or Parquet file (Parquet needs pyarrow).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    profile.add_argument("data", metavar="DATA", help="a .csv, .tsv, .npy or .parquet file")
    profile.add_argument(
        "-o", "--output", required=True, metavar="PATH", help="where to write the profile JSON"
    )
    profile.add_argument(
        "--like",
        metavar="REFERENCE",
        help="a profile JSON whose layout (bins, categories) to build on, so that the "
        "result can be compared or merged with it",
    )
    profile.set_defaults(run=_profile)

    compare = commands.add_parser(
        "compare",
        parents=[reading],
        help="compare serving data with a reference profile: drift and schema",
        description="Compare serving data (a profile JSON, or a data file profiled on the "
        "reference's layout) with a reference profile. Prints the drift report; exit "
        "status 1 when an alert threshold is crossed, so it can gate a pipeline.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("reference", metavar="REFERENCE", help="the reference profile JSON")
    compare.add_argument(
        "serving", metavar="SERVING", nargs="?", help="a serving profile JSON or a data file"
    )
    compare.add_argument(
        "--prometheus",
        metavar="URL",
        help="instead of SERVING: the fleet's profile, summed by this Prometheus server",
    )
    compare.add_argument("--model", metavar="NAME", help="with --prometheus: the model's name")
    compare.add_argument(
        "--model-version", metavar="VERSION", help="with --prometheus: only this version"
    )
    compare.add_argument(
        "--since",
        metavar="DURATION",
        help="with --prometheus: only what was counted in this range (1h); default: everything",
    )
    compare.add_argument("--html", metavar="PATH", help="also write the HTML report here")
    compare.add_argument("--json", action="store_true", help="print the report as JSON")
    compare.add_argument(
        "--fail-on",
        choices=("alert", "warn"),
        default="alert",
        help="the severity that makes the exit status 1 (default alert)",
    )
    compare.set_defaults(run=_compare)

    diff = commands.add_parser(
        "diff",
        help="show what changed between two guard configurations or model references",
        description="Show what changed between two JSON files holding guard configurations "
        "(GuardConfig.to_dict()) or model references (ModelRef.to_dict()). "
        "Exit status 0 when they are equal, 1 when they differ.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    diff.add_argument("a", metavar="A", help="the first JSON file")
    diff.add_argument("b", metavar="B", help="the second JSON file")
    diff.set_defaults(run=_diff)

    config = commands.add_parser(
        "config",
        help="write a guarded function's configuration (or a ModelRef) as JSON, for diff",
        description="Import MODULE and write the configuration of the guarded function "
        "FUNCTION (GuardConfig.to_json()), or the ModelRef of that name, to PATH: the "
        "input of guardrail diff. The module is imported, so its top level runs.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config.add_argument("target", metavar="MODULE:FUNCTION", help="e.g. myservice.scoring:predict")
    config.add_argument(
        "-o", "--output", required=True, metavar="PATH", help="where to write the JSON"
    )
    config.set_defaults(run=_config)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with *argv* (``sys.argv[1:]`` by default); return the exit status."""
    args = _parser().parse_args(argv)
    args.out = sys.stdout
    try:
        with warnings.catch_warnings():
            # numpy's overflow notes on extreme values: the results say what they are.
            warnings.simplefilter("ignore", RuntimeWarning)
            code: int = args.run(args)
    except UsageError as e:
        return _fail(f"{e} (see guardrail {args.command} --help)", EXIT_USAGE)
    except InputError as e:
        return _fail(str(e), EXIT_INPUT)
    except OutputError as e:
        return _fail(str(e), EXIT_OUTPUT)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (``guardrail diff a b | head``): nothing more to say.
        sys.stderr.close()
        return EXIT_OK
    except MemoryError:
        return _fail("out of memory: the input is too large for this machine", EXIT_INPUT)
    except Exception as e:  # noqa: BLE001 - never a traceback: one line, and what to report
        return _fail(
            f"internal error ({type(e).__name__} in guardrail {args.command}): "
            "please report it with the command that caused it",
            EXIT_INTERNAL,
        )
    return code


def _fail(message: str, code: int) -> int:
    # One line whatever the message holds (a path or a parser's text with newlines).
    line = " ".join(message.split())
    print(f"guardrail: error: {line}", file=sys.stderr)
    return code
