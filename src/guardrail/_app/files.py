"""Reading data files into columns for profiling: CSV, ``.npy`` and Parquet.

CSV is read with the :mod:`csv` module (a header row, then one row per
record): an empty cell is missing, a cell that parses as a number is a
number, anything else is text. ``.npy`` files are read without pickle
(``allow_pickle=False``): a structured array gives its field names, a 2-D
array gives ``column_0``, ``column_1``, ... unless names are given. Parquet
needs pyarrow, imported only when a Parquet file is read.
"""

from __future__ import annotations

import csv
import importlib
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, TextIO

import attrs
import numpy as np

from .._errors import FormatError, MissingDependencyError
from .progress import Progress

__all__ = ["Data", "read_data"]

#: Files at least this large get a progress bar while they are read.
PROGRESS_FROM: Final = 8 * 1024 * 1024
CSV_SUFFIXES: Final = (".csv", ".tsv", ".txt")
NPY_SUFFIXES: Final = (".npy",)
PARQUET_SUFFIXES: Final = (".parquet", ".pq")


@attrs.frozen
class Data:
    """A data set read from a file: columns by name (or a pyarrow Table), and its size."""

    rows: int
    columns: dict[str, Any] | None = None
    arrow: Any = None

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in file order."""
        if self.columns is not None:
            return tuple(self.columns)
        return tuple(self.arrow.column_names)


def read_data(
    path: str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
    text_columns: Sequence[str] = (),
    progress: TextIO | None = None,
    progress_from: int = PROGRESS_FROM,
) -> Data:
    """Read a CSV, ``.npy`` or Parquet file (chosen by its suffix).

    Args:
        path: The file.
        names: Column names for a plain 2-D ``.npy`` array.
        text_columns: CSV columns kept as text even where cells look like
            numbers (postcodes, codes).
        progress: Where a progress bar goes for large files (``None``: none).
        progress_from: The size in bytes from which a file is large.

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: As ``open`` does.
        FormatError: The file is not what its suffix says, or is empty.
        MissingDependencyError: Parquet without pyarrow.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    size = file.stat().st_size
    if file.is_dir():
        raise IsADirectoryError(str(file))
    bar = (
        Progress(size, f"reading {file.name}", stream=progress, unit="bytes")
        if progress is not None and size >= progress_from
        else None
    )
    if suffix in CSV_SUFFIXES:
        data = _read_csv(file, set(text_columns), bar, "\t" if suffix == ".tsv" else ",")
    elif suffix in NPY_SUFFIXES:
        data = _read_npy(file, names)
    elif suffix in PARQUET_SUFFIXES:
        data = _read_parquet(file)
    else:
        known = ", ".join(CSV_SUFFIXES + NPY_SUFFIXES + PARQUET_SUFFIXES)
        raise FormatError(
            f"unknown kind of data file {file.suffix or '(no suffix)'!r}; use {known}"
        )
    if bar is not None:
        bar.update(size)
        bar.close()
    if data.rows == 0:
        raise FormatError("the file holds no rows")
    return data


def _all_text(cells: tuple[str, ...], look_at: int = 100) -> bool:
    filled = [cell for cell in cells[: look_at * 4] if cell][:look_at]
    return bool(filled) and all(isinstance(_cell(cell), str) for cell in filled)


def _cell(text: str) -> float | str | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    # "nan" and "inf" in a CSV are more often words than numbers.
    if not math.isfinite(value) and text.strip().lower() not in ("nan", "inf", "-inf", "+inf"):
        return text
    return value


def _read_csv(file: Path, text_columns: set[str], bar: Progress | None, delimiter: str) -> Data:
    with open(file, newline="", encoding="utf-8-sig") as raw:
        reader = csv.reader(raw if bar is None else _Counting(raw, bar), delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise FormatError("the file is empty: a CSV needs a header row") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise FormatError(f"not a readable CSV file: {e}") from None
        if not header or any(not name.strip() for name in header):
            raise FormatError("the header row has an empty column name")
        if len(set(header)) != len(header):
            raise FormatError("the header row names a column twice")
        unknown = text_columns - set(header)
        if unknown:
            raise FormatError(f"no such column(s) to keep as text: {sorted(unknown)}")
        width = len(header)
        try:
            records = list(reader)
        except (csv.Error, UnicodeDecodeError) as e:
            raise FormatError(f"not a readable CSV file: {e}") from None
    widths = set(map(len, records))
    if 0 in widths:  # blank lines
        records = [record for record in records if record]
        widths.discard(0)
    if widths - {width}:
        line, record = next((i, r) for i, r in enumerate(records, 2) if len(r) != width)
        raise FormatError(f"record {line - 1} has {len(record)} fields, the header has {width}")
    cells: list[tuple[str, ...]] = list(zip(*records, strict=True)) or [() for _ in header]
    columns = {
        name: _column(column, name in text_columns)
        for name, column in zip(header, cells, strict=True)
    }
    return Data(rows=len(records), columns=columns)


def _column(cells: tuple[str, ...], as_text: bool) -> Any:
    """One CSV column: numbers as a float64 array when every cell is one, else cell by cell.

    A column whose first filled cells are all text is text throughout (a
    category spelled "7" further down stays the category "7").
    """
    if as_text or _all_text(cells):
        return [cell or None for cell in cells]
    if "" not in cells:
        try:
            values = np.array(cells, dtype=np.float64)
        except ValueError:
            pass
        else:
            if np.isfinite(values).all():
                return values
    return [_cell(cell) for cell in cells]


class _Counting:
    """Wraps a text file to advance a progress bar by the bytes read."""

    def __init__(self, raw: TextIO, bar: Progress | None) -> None:
        self.raw = raw
        self.bar = bar
        self.done = 0

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> str:
        line = next(self.raw)
        if self.bar is not None:
            self.done += len(line)
            if self.done & 0xFFFF < len(line):  # about every 64 KiB
                self.bar.update(self.done)
        return line


def _read_npy(file: Path, names: Sequence[str] | None) -> Data:
    with open(file, "rb") as raw, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's notes on odd headers: the checks below decide
        dtype, shape = _npy_header(raw, file.stat().st_size)
        if dtype.hasobject:
            raise FormatError("not a plain .npy array: pickled objects are refused")
        if len(shape) > 2:
            raise FormatError(f"a .npy array must be 1-D or 2-D, got {len(shape)} dimensions")
        try:
            array = np.load(file, allow_pickle=False)
        except (ValueError, OSError, EOFError, OverflowError, MemoryError) as e:
            raise FormatError(f"not a readable .npy file: {type(e).__name__}") from None
    if not isinstance(array, np.ndarray):
        raise FormatError("a .npy file holds one array")
    if array.dtype.names:
        if array.ndim != 1:
            raise FormatError(f"a structured array must be 1-D, got shape {array.shape}")
        return Data(rows=len(array), columns={n: array[n] for n in array.dtype.names})
    if array.size == 0:
        raise FormatError("the file holds no rows")
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise FormatError(f"a .npy array must be 1-D or 2-D, got shape {array.shape}")
    width = array.shape[1]
    if names is None:
        names = [f"column_{i}" for i in range(width)]
    elif len(names) != width:
        raise FormatError(f"{len(names)} names given for {width} columns")
    elif len(set(names)) != len(names):
        raise FormatError("the names given name a column twice")
    return Data(rows=array.shape[0], columns={n: array[:, i] for i, n in enumerate(names)})


def _npy_header(raw: Any, size: int) -> tuple[np.dtype[Any], tuple[int, ...]]:
    """The dtype and shape a ``.npy`` header declares, checked against the file's size.

    The header is read before the data, so a file claiming a huge shape is
    refused without allocating anything, and a malformed header is a
    :class:`FormatError` whatever the parser raises on it.
    """
    if raw.read(6) != b"\x93NUMPY":
        raise FormatError("not a readable .npy file: no NumPy header")
    raw.seek(0)
    fmt = np.lib.format
    try:
        version = fmt.read_magic(raw)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(raw)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = fmt.read_array_header_2_0(raw)
        else:
            raise FormatError(f"not a readable .npy file: unknown version {version}")
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - the header parser raises many kinds on bad input
        raise FormatError(f"not a readable .npy file: bad header ({type(e).__name__})") from None
    if not all(type(n) is int and n >= 0 for n in shape):
        raise FormatError("not a readable .npy file: bad shape in the header")
    needed = dtype.itemsize
    for n in shape:
        needed *= n
    if needed > size - raw.tell():
        raise FormatError(
            f"not a readable .npy file: the header declares {needed:,} bytes of data, "
            f"the file holds {max(0, size - raw.tell()):,}"
        )
    return dtype, tuple(shape)


def _read_parquet(file: Path) -> Data:
    try:
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise MissingDependencyError(
            "reading Parquet needs pyarrow: pip install 'guardrail-sdk[arrow]'"
        ) from None
    try:
        table = pq.read_table(file)
        table.column_names  # noqa: B018 - decoded now: a name that is not UTF-8 raises here
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
        detail = " ".join(str(e).split())[:200]
        raise FormatError(f"not a readable Parquet file: {type(e).__name__}: {detail}") from None
    return Data(rows=table.num_rows, arrow=table)
