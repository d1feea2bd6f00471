"""guardrail profile and guardrail compare, on files a user brings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import guardrail as gr
from guardrail._app.cli import EXIT_FOUND, EXIT_INPUT, EXIT_OK, EXIT_OUTPUT, main


def write_csv(
    path: Path, *, shift: float = 0.0, new_country: bool = False, rows: int = 2_000
) -> str:
    rng = np.random.default_rng(0 if not shift else 1)
    countries = ["FR", "DE", "ES"] + (["BR"] if new_country else [])
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["amount", "age", "country"])
        for _ in range(rows):
            writer.writerow(
                [round(float(rng.lognormal(3 + shift, 1)), 2), int(rng.integers(18, 90)),
                 str(rng.choice(countries))]
            )  # fmt: skip
    return str(path)


@pytest.fixture
def reference(tmp_path: Path) -> str:
    data = write_csv(tmp_path / "train.csv")
    out = str(tmp_path / "reference.json")
    assert main(["profile", data, "-o", out]) == EXIT_OK
    return out


class TestProfile:
    def test_writes_a_profile_that_reads_back(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """profile writes versioned JSON that gr.Profile reads back, and says what it found."""
        reference = tmp_path / "reference.json"
        assert main(["profile", write_csv(tmp_path / "t.csv"), "-o", str(reference)]) == EXIT_OK
        profile = gr.Profile.from_json(reference.read_text(encoding="utf-8"))
        assert profile.names == ("amount", "age", "country")
        assert profile.rows == 2_000
        assert "2,000 rows, 3 features (2 numeric, 1 categorical)" in capsys.readouterr().out

    def test_npy_with_names(self, tmp_path: Path) -> None:
        """A 2-D .npy array is profiled with the names given."""
        np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(500, 2)))
        out = tmp_path / "p.json"
        assert main(["profile", str(tmp_path / "x.npy"), "--names", "a,b", "-o", str(out)]) == 0
        assert gr.Profile.from_json(out.read_text(encoding="utf-8")).names == ("a", "b")

    def test_parquet(self, tmp_path: Path) -> None:
        """A Parquet file is profiled through pyarrow."""
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table({"amount": [1.0, 2.0, 3.0], "country": ["FR", "DE", None]}),
                       tmp_path / "t.parquet")  # fmt: skip
        out = tmp_path / "p.json"
        assert main(["profile", str(tmp_path / "t.parquet"), "-o", str(out)]) == EXIT_OK
        assert gr.Profile.from_json(out.read_text(encoding="utf-8")).names == ("amount", "country")

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing data file is an input error in one line."""
        assert main(["profile", str(tmp_path / "no.csv"), "-o", "x.json"]) == EXIT_INPUT
        assert capsys.readouterr().err == f"guardrail: error: {tmp_path / 'no.csv'}: no such file\n"

    def test_ragged_csv(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A malformed CSV names the record."""
        bad = tmp_path / "bad.csv"
        bad.write_text("a,b\n1,2\n3\n", encoding="utf-8")
        assert main(["profile", str(bad), "-o", str(tmp_path / "p.json")]) == EXIT_INPUT
        assert "record 2 has 1 fields" in capsys.readouterr().err

    def test_unwritable_output(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An output that cannot be written is an output error (exit 4)."""
        data = write_csv(tmp_path / "d.csv", rows=50)
        target = str(tmp_path / "missing-dir" / "p.json")
        assert main(["profile", data, "-o", target]) == EXIT_OUTPUT
        assert "cannot write" in capsys.readouterr().err


class TestCompare:
    def test_same_data_is_ok(
        self, tmp_path: Path, reference: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Serving data like the training data: exit 0, no drift."""
        serving = write_csv(tmp_path / "serving.csv")
        assert main(["compare", reference, serving]) == EXIT_OK
        assert "no feature drifted" in capsys.readouterr().out

    def test_drift_exits_one_and_writes_html(
        self, tmp_path: Path, reference: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Shifted amounts and a new country: exit 1, and the HTML report has both."""
        serving = write_csv(tmp_path / "serving.csv", shift=1.0, new_country=True)
        html = tmp_path / "report.html"
        assert main(["compare", reference, serving, "--html", str(html)]) == EXIT_FOUND
        out = capsys.readouterr().out
        assert "ALERT amount" in out
        assert "ALERT country" in out
        page = html.read_text(encoding="utf-8")
        assert page.count('<svg class="histogram"') == 3
        assert "<td>country</td>" in page

    def test_json_output(
        self, tmp_path: Path, reference: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--json prints the skew report's JSON form; profiles compare as well as data."""
        serving_profile = tmp_path / "serving.json"
        main(["profile", write_csv(tmp_path / "s.csv", shift=1.0), "-o", str(serving_profile)])
        capsys.readouterr()
        # A profile built on its own layout cannot be compared: a clear input error.
        assert main(["compare", reference, str(serving_profile)]) == EXIT_INPUT
        assert "does not match the reference" in capsys.readouterr().err
        serving = write_csv(tmp_path / "s2.csv", shift=1.0)
        assert main(["compare", reference, serving, "--json"]) == EXIT_FOUND
        data = json.loads(capsys.readouterr().out)
        assert data["severity"] == "alert"
        assert "amount" in data["drifted"]

    def test_fail_on_warn(self, tmp_path: Path, reference: str) -> None:
        """--fail-on warn turns a warning into exit status 1 as well."""
        serving = write_csv(tmp_path / "serving.csv", shift=0.2)
        code_alert = main(["compare", reference, serving])
        code_warn = main(["compare", reference, serving, "--fail-on", "warn"])
        assert (code_alert, code_warn) in {(EXIT_OK, EXIT_FOUND), (EXIT_FOUND, EXIT_FOUND)}

    def test_too_few_rows_say_insufficient_data(
        self, tmp_path: Path, reference: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Twenty serving rows are no drift but "insufficient data", with the rows needed."""
        serving = write_csv(tmp_path / "serving.csv", rows=20)
        assert main(["compare", reference, serving]) == EXIT_OK
        assert "serving rows needed" in capsys.readouterr().out
        assert main(["compare", reference, serving, "--json"]) == EXIT_OK
        data = json.loads(capsys.readouterr().out)
        assert data["verdict"] == "insufficient"
        assert data["rows_needed"] > 20

    def test_bad_reference(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A reference of an unknown version is an input error naming the file."""
        bad = tmp_path / "ref.json"
        bad.write_text('{"format": "guardrail.profile", "version": 99, "features": []}')
        serving = write_csv(tmp_path / "s.csv", rows=20)
        assert main(["compare", str(bad), serving]) == EXIT_INPUT
        err = capsys.readouterr().err
        assert err.startswith(f"guardrail: error: {bad}: ")
        assert "version" in err

    def test_schema_problems_are_listed(
        self, tmp_path: Path, reference: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Text where the reference had numbers is reported as a schema problem."""
        serving = tmp_path / "s.csv"
        serving.write_text("amount,age,country\n12.5,40,FR\nlots,41,DE\n", encoding="utf-8")
        main(["compare", reference, str(serving)])
        assert "schema: amount: 1 type" in capsys.readouterr().out

    def test_missing_columns_warn(
        self, tmp_path: Path, reference: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Serving data lacking the reference's columns warns, and they count as missing."""
        other = tmp_path / "other.csv"
        other.write_text("amount\n1.0\n2.0\n", encoding="utf-8")
        assert main(["compare", reference, str(other)]) == EXIT_FOUND
        assert "lacks age, country: counted as missing" in capsys.readouterr().err
