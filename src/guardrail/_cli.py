"""The ``guardrail`` command line.

Exit statuses (also in ``guardrail --help``):

- 0: done; no difference, no alert.
- 1: found something: ``diff`` saw a difference, ``compare`` crossed an alert threshold.
- 2: usage error: unknown command or bad arguments.
- 3: input error: a missing or unreadable file, malformed JSON, a document of
  the wrong kind or of an unknown format version, a reader that is not installed.
- 4: output error: a result file could not be written.
- 130: interrupted.

Errors are one line on stderr, ``guardrail: error: ...``, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

from ._errors import ConfigError, FormatError

__all__ = [
    "EXIT_FOUND",
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
EXIT_INTERRUPTED: Final = 130

_EPILOG: Final = """exit statuses:
  0    done; no difference, no alert
  1    a difference (diff) or an alert (compare) was found
  2    usage error
  3    input error: missing file, malformed JSON, unknown format or version
  4    output error: a result file could not be written
  130  interrupted
"""


class InputError(Exception):
    """A file the user gave cannot be used; the message says why, in one line."""


class OutputError(Exception):
    """A result could not be written; the message says why, in one line."""


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


_CONFIG_KEYS: Final = frozenset({"format", "name", "model", "returns", "on_out_of_scale"})


def _describe_kind(data: object) -> str:
    """'config' or 'model' for a guard configuration or a model reference."""
    if isinstance(data, Mapping) and "mechanisms" in data:
        return "config"
    if isinstance(data, Mapping) and "name" in data and "version" in data:
        return "model"
    raise FormatError(
        "neither a guard configuration (GuardConfig.to_dict()) nor a model reference "
        "(ModelRef.to_dict())"
    )


def _check_config(data: Mapping[str, Any]) -> None:
    from ._guard_config import _SLOTS, FORMAT_VERSION
    from ._model import ModelRef
    from ._scales import SCALES

    version = data.get("format")
    if version != FORMAT_VERSION:
        raise FormatError(
            f"guard configuration format {version!r} is not supported "
            f"(this guardrail reads format {FORMAT_VERSION})"
        )
    keys = set(data)
    expected = _CONFIG_KEYS | {"mechanisms"}
    if keys != expected:
        missing, unknown = sorted(expected - keys), sorted(keys - expected)
        raise FormatError(f"guard configuration keys: missing {missing}, unknown {unknown}")
    ModelRef.from_dict(data["model"])
    if data["returns"] not in SCALES:
        raise FormatError(f"unknown scale {data['returns']!r}")
    mechanisms = data["mechanisms"]
    if not isinstance(mechanisms, list):
        raise FormatError("mechanisms must be a list")
    for entry in mechanisms:
        if not isinstance(entry, Mapping) or set(entry) != {"slot", "type", "name", "settings"}:
            raise FormatError("a mechanism is described by slot, type, name and settings")
        if entry["slot"] not in _SLOTS:
            raise FormatError(f"unknown mechanism slot {entry['slot']!r}")


def read_diffable(path: str) -> tuple[str, Mapping[str, Any]]:
    """A guard configuration or model reference from *path*, checked: (kind, data)."""
    from ._model import ModelRef

    data = read_json(path)
    try:
        kind = _describe_kind(data)
        if kind == "config":
            _check_config(data)
        else:
            ModelRef.from_dict(data)
    except (FormatError, ConfigError) as e:
        raise InputError(f"{path}: {e}") from None
    return kind, data


# -- commands ---------------------------------------------------------------------------


def _diff(args: argparse.Namespace) -> int:
    from ._guard_config import diff

    kind_a, a = read_diffable(args.a)
    kind_b, b = read_diffable(args.b)
    if kind_a != kind_b:
        names = {"config": "a guard configuration", "model": "a model reference"}
        raise InputError(f"{args.a} is {names[kind_a]} but {args.b} is {names[kind_b]}")
    changes = diff(a, b)
    print(changes, file=args.out)
    return EXIT_FOUND if changes else EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run

    return run(out=args.out)


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
    from . import __version__

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
    demo.set_defaults(run=_demo)

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

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with *argv* (``sys.argv[1:]`` by default); return the exit status."""
    args = _parser().parse_args(argv)
    args.out = sys.stdout
    try:
        code: int = args.run(args)
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
    return code


def _fail(message: str, code: int) -> int:
    print(f"guardrail: error: {message}", file=sys.stderr)
    return code
