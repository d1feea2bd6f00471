"""Reading data files for profiling: CSV, .npy and Parquet, and their bad forms."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import guardrail as gr
from guardrail._app.files import read_data


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class TestCSV:
    def test_numbers_text_and_missing(self, tmp_path: Path) -> None:
        """Cells that parse as numbers are numbers, empty cells are missing, the rest is text."""
        data = read_data(write(tmp_path / "d.csv", "amount,country\n12.5,FR\n,DE\n3,\n"))
        assert data.rows == 3
        assert data.columns == {"amount": [12.5, None, 3.0], "country": ["FR", "DE", None]}

    def test_all_number_columns_are_arrays(self, tmp_path: Path) -> None:
        """A column of numbers only becomes a float64 array; a text column stays text."""
        data = read_data(write(tmp_path / "d.csv", "a,b\n1,x\n2.5,y\n1e3,z\n"))
        assert data.columns is not None
        assert isinstance(data.columns["a"], np.ndarray)
        assert data.columns["a"].tolist() == [1.0, 2.5, 1000.0]
        assert data.columns["b"] == ["x", "y", "z"]

    def test_a_text_column_keeps_number_like_cells(self, tmp_path: Path) -> None:
        """In a column whose first hundred cells are text, a later "7" is the category "7"."""
        data = read_data(write(tmp_path / "d.csv", "code\n" + "A\n" * 100 + "7\n"))
        assert data.columns is not None
        assert data.columns["code"][-2:] == ["A", "7"]
        mixed = read_data(write(tmp_path / "m.csv", "code\nA\n7\n"))
        assert mixed.columns == {"code": ["A", 7.0]}

    def test_text_columns_stay_text(self, tmp_path: Path) -> None:
        """A column named as text keeps number-like cells as strings."""
        data = read_data(write(tmp_path / "d.csv", "zip\n75001\n01000\n"), text_columns=["zip"])
        assert data.columns == {"zip": ["75001", "01000"]}

    def test_words_that_look_like_floats_stay_text(self, tmp_path: Path) -> None:
        """'Infinity' is a word here; 'nan' and 'inf' are numbers."""
        data = read_data(write(tmp_path / "d.csv", "x\nInfinity\nnan\ninf\n"))
        assert data.columns is not None
        assert data.columns["x"][0] == "Infinity"
        assert np.isnan(data.columns["x"][1])
        assert data.columns["x"][2] == float("inf")

    def test_tsv(self, tmp_path: Path) -> None:
        """A .tsv file is split on tabs."""
        data = read_data(write(tmp_path / "d.tsv", "a\tb\n1\tx\n"))
        assert data.columns is not None
        assert list(data.columns["a"]) == [1.0]
        assert data.columns["b"] == ["x"]

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "a CSV needs a header row"),
            ("a,b\n1,2\n1,2,3\n", "record 2 has 3 fields, the header has 2"),
            ("a,a\n1,2\n", "names a column twice"),
            ("a,\n1,2\n", "empty column name"),
            ("a,b\n", "no rows"),
        ],
    )
    def test_malformed(self, tmp_path: Path, text: str, message: str) -> None:
        """A malformed CSV is a FormatError that says what is wrong."""
        with pytest.raises(gr.errors.FormatError, match=message):
            read_data(write(tmp_path / "d.csv", text))

    def test_not_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are a FormatError, not a UnicodeDecodeError."""
        path = tmp_path / "d.csv"
        path.write_bytes(b"a\n\xff\xfe\n")
        with pytest.raises(gr.errors.FormatError, match="not a readable CSV"):
            read_data(path)

    def test_progress_bar_on_large_files(self, tmp_path: Path) -> None:
        """A large file draws a progress bar on the given stream and finishes it."""
        path = write(tmp_path / "d.csv", "a\n" + "1\n" * 100_000)
        stream = io.StringIO()
        read_data(path, progress=stream, progress_from=1024)
        assert "reading d.csv" in stream.getvalue()
        assert "100%" in stream.getvalue()
        quiet = io.StringIO()
        read_data(path, progress=quiet)
        assert quiet.getvalue() == ""


class TestNpy:
    def test_2d_with_and_without_names(self, tmp_path: Path) -> None:
        """A 2-D array gives column_0, column_1 ... or the names given."""
        np.save(tmp_path / "x.npy", np.arange(6.0).reshape(3, 2))
        data = read_data(tmp_path / "x.npy")
        assert data.names == ("column_0", "column_1")
        named = read_data(tmp_path / "x.npy", names=["a", "b"])
        assert named.columns is not None
        assert named.columns["b"].tolist() == [1.0, 3.0, 5.0]
        with pytest.raises(gr.errors.FormatError, match="1 names given for 2 columns"):
            read_data(tmp_path / "x.npy", names=["a"])

    def test_structured(self, tmp_path: Path) -> None:
        """A structured array gives its field names."""
        array = np.array([(1.0, b"FR")], dtype=[("amount", "f8"), ("country", "S2")])
        np.save(tmp_path / "s.npy", array)
        assert read_data(tmp_path / "s.npy").names == ("amount", "country")

    def test_object_arrays_are_refused(self, tmp_path: Path) -> None:
        """An object array would need pickle: refused."""
        np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
        with pytest.raises(gr.errors.FormatError, match="pickled objects are refused"):
            read_data(tmp_path / "o.npy")

    def test_garbage(self, tmp_path: Path) -> None:
        """A file that is not .npy inside is a FormatError."""
        path = write(tmp_path / "g.npy", "hello")
        with pytest.raises(gr.errors.FormatError, match=r"not a readable \.npy"):
            read_data(path)


class TestParquet:
    def test_reads_a_table(self, tmp_path: Path) -> None:
        """A Parquet file is read into a pyarrow Table."""
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table({"amount": [1.0, 2.0], "country": ["FR", None]}), tmp_path / "t.pq")
        data = read_data(tmp_path / "t.pq")
        assert data.rows == 2
        assert data.names == ("amount", "country")

    def test_garbage(self, tmp_path: Path) -> None:
        """A file that is not Parquet inside is a FormatError."""
        pytest.importorskip("pyarrow")
        path = write(tmp_path / "g.parquet", "hello")
        with pytest.raises(gr.errors.FormatError, match="not a readable Parquet"):
            read_data(path)


class TestOther:
    def test_unknown_suffix(self, tmp_path: Path) -> None:
        """A suffix that names no known kind is a FormatError listing the known ones."""
        with pytest.raises(gr.errors.FormatError, match=r"unknown kind of data file '\.xlsx'"):
            read_data(write(tmp_path / "d.xlsx", "x"))

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file raises FileNotFoundError, for the caller to report."""
        with pytest.raises(FileNotFoundError):
            read_data(tmp_path / "nope.csv")
