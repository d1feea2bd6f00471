"""One call's inputs, read once: the view every mechanism shares.

A guard builds :class:`Inputs` from its predict function's input parameter and
hands the same object to every mechanism, so that a DataFrame, a list of rows,
a 2-D array and a column mapping mean the same batch to the skew monitor, the
limits, the holdout and the outcome monitor. No mechanism parses arguments
itself.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, cast

import numpy as np

from ._errors import ConfigError

__all__ = [
    "MISSING",
    "InputBinding",
    "Inputs",
    "InputsKind",
    "bind_inputs",
    "is_frame",
    "rows_of",
]

#: How the inputs were given. ``"row"``: one row (a mapping, a 1-D array or any
#: other object); the others are batches (``"values"``: a sequence of scalar
#: rows such as texts, recognised once a prediction of as many rows came back).
InputsKind = Literal["row", "rows", "positional", "columns", "frame", "arrow", "values"]


class _Missing:
    """The input parameter was not passed (the predict function has a default)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

_SEQUENCE_ROW = (list, tuple, np.ndarray)
_SCALARS = frozenset({float, int, str, bool, type(None)})


class Inputs:
    """A call's inputs: one row or a batch, with one idea of rows and columns.

    The kinds of input it reads:

    * one row: a mapping of feature name to value (or any object that is not
      one of the batches below, e.g. a 1-D array of values);
    * a list (or tuple) of rows: mappings, or sequences of values in feature
      order;
    * a 2-D numpy array, its columns in feature order;
    * a column mapping: a mapping whose values are all 1-D columns (lists,
      tuples, 1-D arrays, pandas Series) of one length;
    * a pandas DataFrame or a pyarrow Table.

    Positional rows (a 2-D array, lists of values) have column names only when
    the guard knows them: from a skew monitor's reference schema, or given as
    ``features=`` when decorating.

    >>> inputs = Inputs.of([{"amount": 12.0}, {"amount": 3.5}])
    >>> inputs.batch_size, inputs.kind
    (2, 'rows')
    >>> inputs.column("amount")
    [12.0, 3.5]
    >>> Inputs.of({"amount": 12.0}).batch_size is None
    True
    """

    __slots__ = ("_columns", "_rows", "batch_size", "kind", "names", "raw")

    raw: Any
    kind: InputsKind
    batch_size: int | None
    names: tuple[str, ...] | None

    def __init__(
        self,
        raw: Any,
        kind: InputsKind,
        batch_size: int | None,
        names: tuple[str, ...] | None = None,
    ) -> None:
        self.raw = raw
        self.kind = kind
        self.batch_size = batch_size
        self.names = names
        self._columns: dict[Any, Any] | None = None
        self._rows: Sequence[Any] | None = None

    @classmethod
    def of(cls, raw: Any, names: Sequence[str] | None = None) -> Inputs:
        """Read *raw* (one row or a batch); *names* name positional columns."""
        named = None if names is None else tuple(names)
        if type(raw) is dict:
            # The common case, one row as a dict: decided by its first value.
            for value in raw.values():
                if type(value) in _SCALARS or not (
                    isinstance(value, _SEQUENCE_ROW) or _is_series(value)
                ):
                    return cls(raw, "row", None, named)
                break
        if isinstance(raw, np.ndarray):
            if raw.ndim == 2:
                return cls(raw, "positional", int(raw.shape[0]), named)
            return cls(raw, "row", None, named)
        if isinstance(raw, (list, tuple)):
            if not raw:
                return cls(raw, "rows", 0, named)
            first = raw[0]
            if isinstance(first, Mapping):
                return cls(raw, "rows", len(raw), named)
            if isinstance(first, _SEQUENCE_ROW):
                return cls(raw, "positional", len(raw), named)
            return cls(raw, "row", None, named)
        if isinstance(raw, Mapping):
            size = _column_length(raw)
            if size is not None:
                return cls(raw, "columns", size, named)
            return cls(raw, "row", None, named)
        if is_frame(raw):
            return cls(raw, "frame", len(raw), named)
        if _is_arrow_table(raw):
            return cls(raw, "arrow", int(raw.num_rows), named)
        return cls(raw, "row", None, named)

    def __repr__(self) -> str:
        size = "one row" if self.batch_size is None else f"{self.batch_size} rows"
        return f"Inputs({self.kind}, {size})"

    def __len__(self) -> int:
        """The number of rows: 1 for one row."""
        return 1 if self.batch_size is None else self.batch_size

    @property
    def is_batch(self) -> bool:
        """Whether the inputs are a batch (even of one row)."""
        return self.batch_size is not None

    @property
    def width(self) -> int | None:
        """The number of values per positional row, if the rows are positional."""
        if self.kind != "positional":
            return None
        raw = self.raw
        if isinstance(raw, np.ndarray):
            return int(raw.shape[1])
        widths = {len(row) if hasattr(row, "__len__") else -1 for row in raw}
        return widths.pop() if len(widths) == 1 else None

    def rows(self) -> Sequence[Any]:
        """The rows, in the form they were given: ``[row]`` for one row.

        Rows of a column mapping, a DataFrame or a Table are dicts of feature
        name to value, and so are positional rows (a 2-D array, lists of
        values) when :attr:`names` are known; without names they stay
        sequences (array rows for a 2-D array).
        """
        rows = self._rows
        if rows is None:
            rows = self._rows = self._read_rows()
        return rows

    def row(self, index: int) -> Any:
        """Row *index* (``0`` for one row)."""
        if self.kind == "row":
            if index != 0:
                raise IndexError(index)
            return self.raw
        if self._rows is None and (
            self.kind == "rows" or (self.kind == "positional" and self.names is None)
        ):
            return self.raw[index]
        return self.rows()[index]

    def columns(self) -> dict[Any, Any]:
        """The columns by feature name: 1-D arrays, lists or frame columns.

        Positional rows need :attr:`names`; without them (or with rows of
        another width) they raise :class:`~guardrail.errors.ConfigError`.
        One row gives columns of one value.
        """
        columns = self._columns
        if columns is None:
            columns = self._columns = self._read_columns()
        return columns

    def column(self, name: str) -> Any:
        """The column *name*, or None if the inputs have no such column."""
        try:
            return self.columns().get(name)
        except ConfigError:
            return None

    def matching(self, size: int | None) -> Inputs:
        """This view, read again to match a prediction of *size* rows (None: one).

        Inputs are read before the predict function runs, so a shape can be
        ambiguous until its prediction comes back: a list of four texts
        scored as four predictions is a batch of four scalar rows; a one-row
        list scored as one number, or a row whose values are lists, is one
        row. A prediction whose size still does not match leaves the view as
        it is (mechanisms then find no row for the extra predictions).
        """
        if size == self.batch_size:
            return self
        raw = self.raw
        if size is None:
            if self.batch_size == 1 and self.kind != "columns":
                return Inputs(self.rows()[0], "row", None, self.names)
            return Inputs(raw, "row", None, self.names)
        if (
            self.kind == "row"
            and not isinstance(raw, (str, bytes, Mapping))
            and _length(raw) == size
        ):
            return Inputs(raw, "values", size, self.names)
        return self

    # -- reading -----------------------------------------------------------------

    def _read_rows(self) -> Sequence[Any]:
        raw, kind = self.raw, self.kind
        if kind == "row":
            return [raw]
        if kind == "rows":
            return cast("Sequence[Any]", raw)
        if kind == "positional":
            names = self.names
            if names is None or self.width != len(names):
                return list(raw) if isinstance(raw, np.ndarray) else cast("Sequence[Any]", raw)
            values = raw.tolist() if isinstance(raw, np.ndarray) else raw
            return [dict(zip(names, row, strict=True)) for row in values]
        if kind == "values":
            return list(raw)
        if kind == "frame":
            return list(raw.to_dict("records"))
        if kind == "arrow":
            return list(raw.to_pylist())
        columns = self.columns()
        keys = list(columns)
        size = self.batch_size or 0
        lists = [_as_list(columns[key]) for key in keys]
        return [{key: lists[j][i] for j, key in enumerate(keys)} for i in range(size)]

    def _read_columns(self) -> dict[Any, Any]:
        raw, kind = self.raw, self.kind
        if kind == "columns":
            return dict(raw)
        if kind == "frame":
            return frame_columns(raw)
        if kind == "arrow":
            return {name: _arrow_column(raw.column(name)) for name in raw.column_names}
        if kind == "rows":
            out: dict[Any, list[Any]] = {}
            size = len(raw)
            for i, row in enumerate(raw):
                if not isinstance(row, Mapping):
                    continue  # a malformed row has no values here
                for key, value in row.items():
                    column = out.get(key)
                    if column is None:
                        column = out[key] = [None] * size
                    column[i] = value
            return out
        if kind == "row":
            if isinstance(raw, Mapping):
                return {key: [value] for key, value in raw.items()}
            return {}
        if kind == "values":
            names = self.names
            return {names[0]: raw} if names is not None and len(names) == 1 else {}
        names = self.names
        width = self.width
        if names is None:
            raise ConfigError(
                "positional rows have no feature names: give them to the guard "
                "(features=...) or use a skew monitor with a reference"
            )
        if width is None:
            raise ConfigError("positional rows of different widths have no columns")
        if width != len(names):
            raise ConfigError(f"positional rows have {width} values, the features are {len(names)}")
        if isinstance(raw, np.ndarray):
            return {name: raw[:, j] for j, name in enumerate(names)}
        transposed = list(zip(*raw, strict=True))
        return {name: list(transposed[j]) for j, name in enumerate(names)}


def rows_of(inputs: object, n: int) -> Sequence[Any] | None:
    """The *n* rows of *inputs* (raw, or already :class:`Inputs`), or None.

    None when the inputs are absent, unreadable, or hold another number of
    rows than the *n* predictions they go with.
    """
    if inputs is None:
        return None
    try:
        view = inputs if isinstance(inputs, Inputs) else Inputs.of(inputs)
        if view.raw is None:
            return None
        rows = view.rows()
    except Exception:  # noqa: BLE001 - unreadable inputs have no rows
        return None
    return rows if len(rows) == n else None


def _length(value: Any) -> int | None:
    """len(*value*) for a sized sequence or 1-D array, else None."""
    if isinstance(value, np.ndarray):
        return int(value.shape[0]) if value.ndim == 1 else None
    try:
        return len(value)
    except TypeError:
        return None


def _is_series(value: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.Series)


def is_frame(value: Any) -> bool:
    """Whether *value* is a pandas DataFrame (pandas is never imported for this)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _is_arrow_table(value: Any) -> bool:
    pyarrow = sys.modules.get("pyarrow")
    return pyarrow is not None and isinstance(value, pyarrow.Table)


def _column_length(mapping: Mapping[Any, Any]) -> int | None:
    """The length of a mapping's columns, or None if it is not a column mapping."""
    if not mapping:
        return None
    length: int | None = None
    for value in mapping.values():
        if isinstance(value, np.ndarray):
            if value.ndim != 1:
                return None
            n = int(value.shape[0])
        elif isinstance(value, (list, tuple)) or _is_series(value):
            n = len(value)
        else:
            return None
        if length is None:
            length = n
        elif n != length:
            return None
    return length


def frame_columns(frame: Any) -> dict[Any, Any]:
    """A pandas DataFrame's columns as numpy arrays (NA of extension dtypes is None)."""
    columns: dict[Any, Any] = {}
    for name, series in frame.items():
        if isinstance(series.dtype, np.dtype):
            columns[name] = series.to_numpy()
        else:  # extension dtypes (nullable, string, categorical): NA is a missing value
            columns[name] = series.to_numpy(dtype=object, na_value=None)
    return columns


def _arrow_column(column: Any) -> Any:
    import pyarrow as pa

    kind = column.type
    if column.null_count == 0 and (
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    ):
        return column.to_numpy()
    return np.asarray(column.to_pylist(), dtype=object)


def _as_list(column: Any) -> list[Any]:
    if isinstance(column, list):
        return column
    if isinstance(column, np.ndarray):
        return list(column.tolist())
    return list(column)


class InputBinding:
    """Where a predict function takes its inputs: a position and a name.

    Decided once, when decorating: the first parameter after ``self``/``cls``
    by default, or the one named.
    """

    __slots__ = ("default", "name", "position")

    def __init__(self, position: int | None, name: str | None, default: Any = MISSING) -> None:
        self.position = position
        self.name = name
        self.default = default

    def __call__(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """The input argument of one call: its default when omitted, else :data:`MISSING`."""
        position = self.position
        if position is not None and len(args) > position:
            return args[position]
        name = self.name
        if name is not None and name in kwargs:
            return kwargs[name]
        return self.default

    def __repr__(self) -> str:
        return f"InputBinding(position={self.position}, name={self.name!r})"


_FIRST = InputBinding(0, None)


def bind_inputs(fn: Callable[..., Any] | None, parameter: str | None = None) -> InputBinding:
    """Find the input parameter of *fn* (the first after ``self``/``cls``, or *parameter*).

    Raises :class:`~guardrail.errors.ConfigError` when *parameter* is not one
    of *fn*'s parameters.
    """
    if fn is None:
        return _FIRST
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        if parameter is not None:
            raise ConfigError(f"cannot read the parameters of {fn!r}") from None
        return _FIRST
    position = 0
    #: (position, name, keyword name, default) of each parameter that can hold inputs.
    candidates: list[tuple[int | None, str, str | None, Any]] = []
    for p in signature.parameters.values():
        default = MISSING if p.default is p.empty else p.default
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            if p.kind is p.VAR_POSITIONAL:
                candidates.append((position, p.name, None, MISSING))
            break
        if p.kind is p.KEYWORD_ONLY:
            candidates.append((None, p.name, p.name, default))
            continue
        keyword = None if p.kind is p.POSITIONAL_ONLY else p.name
        candidates.append((position, p.name, keyword, default))
        position += 1
    if parameter is not None:
        for pos, name, keyword, default in candidates:
            if name == parameter:
                return InputBinding(pos, keyword, default)
        raise ConfigError(f"{parameter!r} is not a parameter of {getattr(fn, '__qualname__', fn)}")
    for index, (pos, name, keyword, default) in enumerate(candidates):
        if index == 0 and name in ("self", "cls"):
            continue
        return InputBinding(pos, keyword, default)
    return _FIRST
