"""Models from an MLflow registry: their ModelRef, their stored reference, a guard.

One local tracking store and registry (SQLite, artifacts on disk) is built per
module, since importing MLflow and logging a model take seconds; one test runs
the same path against a real ``mlflow server`` on a free loopback port.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

# MLflow decides at import whether to send usage telemetry; tests send none.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

import guardrail as gr
import guardrail.mlflow as grm
from guardrail.errors import (
    ConfigError,
    MissingSignatureError,
    ModelMismatchError,
    ModelNotFoundError,
    ReferenceNotFoundError,
    RegistryError,
    RegistryUnreachableError,
    SignatureMismatchError,
)
from guardrail.testing import capture_events

FEATURES = ("amount", "age", "score")

# MLflow and the libraries beneath it (SQLAlchemy, Alembic, pydantic) deprecate
# things in each other; those warnings are theirs to fix, not this project's.
pytestmark = [
    pytest.mark.integration,  # a real MLflow store and server
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*(MLflow|mlflow|type hint).*:UserWarning"),
]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def training_frame(rows: int = 300) -> Any:
    import pandas as pd

    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 30.0, rows),
            "age": rng.integers(18, 80, rows).astype(np.float64),
            "score": rng.normal(0.0, 1.0, rows),
        }
    )


def log_models(
    tracking: str, artifacts: str, registered: str, *, unsigned: bool = True
) -> dict[str, Any]:
    """Log a classifier with a signature (registered, aliased) and one without."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    experiment = client.create_experiment("guardrail", artifact_location=artifacts)
    frame = training_frame()
    labels = (frame["amount"] > 60).astype(int)
    clf = LogisticRegression(max_iter=200).fit(frame, labels)
    # The fluent API logs through MLflow's current tracking URI; set it for this
    # block only (the registry follows it), and leave it unset again after.
    mlflow.set_tracking_uri(tracking)
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            signed = mlflow.sklearn.log_model(
                clf,
                name="model",
                signature=infer_signature(frame, clf.predict_proba(frame)),
                pip_requirements=["scikit-learn"],
                registered_model_name=registered,
            )
            if unsigned:
                mlflow.sklearn.log_model(clf, name="unsigned", pip_requirements=["scikit-learn"])
    finally:
        mlflow.set_tracking_uri(None)
    client.set_registered_model_alias(registered, "champion", "1")
    # A model stored among its run's artifacts, as MLflow 2 logged them.
    with tempfile.TemporaryDirectory() as saved:
        mlflow.sklearn.save_model(
            clf,
            Path(saved, "legacy"),
            signature=infer_signature(frame, clf.predict_proba(frame)),
            pip_requirements=["scikit-learn"],
        )
        client.log_artifacts(run.info.run_id, str(Path(saved, "legacy")), "legacy")
    return {
        "run_id": run.info.run_id,
        "signed": signed,
        "frame": frame,
        "clf": clf,
    }


@pytest.fixture(scope="module", autouse=True)
def _downloads_removed() -> Iterator[None]:
    """Model downloads left for the caller (describe, guard_model) go into one removed folder."""
    folder = tempfile.mkdtemp(prefix="guardrail-mlflow-downloads-")
    previous = tempfile.tempdir
    tempfile.tempdir = folder
    try:
        yield
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(folder, ignore_errors=True)


class Store:
    """A local tracking store and registry with two logged models."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tracking = f"sqlite:///{root / 'mlflow.db'}"
        logged = log_models(self.tracking, (root / "artifacts").as_uri(), "fraud")
        self.run_id: str = logged["run_id"]
        self.signed_uri: str = logged["signed"].model_uri
        self.unsigned_uri = f"runs:/{self.run_id}/unsigned"
        self.frame = logged["frame"]
        self.clf = logged["clf"]
        self.reference = gr.Profile.from_pandas(self.frame)

    def kw(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking}


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    root = Path(tempfile.mkdtemp(prefix="guardrail-mlflow-test-"))
    try:
        yield Store(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


class TestDescribe:
    def test_registered_version(self, store: Store) -> None:
        """models:/name/version gives the registered name and version, run and flavor."""
        model = grm.describe("models:/fraud/1", **store.kw())
        assert (model.ref.name, model.ref.version) == ("fraud", "1")
        assert (model.registered_name, model.registered_version) == ("fraud", "1")
        assert model.run_id == store.run_id
        assert model.flavor == "sklearn"
        assert model.features == FEATURES
        assert model.ref.trained_at is not None
        assert model.ref.trained_at.utcoffset() is not None

    def test_every_uri_of_one_model_gives_one_hash(self, store: Store) -> None:
        """Version, alias, run path and model id name the same files, so the same sha256."""
        uris = [
            "models:/fraud/1",
            "models:/fraud@champion",
            "models:/fraud/latest",
            f"runs:/{store.run_id}/model",
            store.signed_uri,
        ]
        hashes = {grm.describe(uri, **store.kw()).ref.artifact_sha256 for uri in uris}
        assert len(hashes) == 1
        assert None not in hashes

    def test_the_hash_is_fingerprint_model_of_the_files(self, store: Store) -> None:
        """artifact_sha256 is fingerprint_model of the downloaded files, stable across copies."""
        model = grm.describe("models:/fraud/1", **store.kw())
        copy = Path(tempfile.mkdtemp()) / "copy"
        shutil.copytree(model.path, copy)
        (copy / "registered_model_meta").write_text("model_name: other\n")
        assert grm.fingerprint_model(copy) == model.ref.artifact_sha256
        (copy / "MLmodel").write_text((copy / "MLmodel").read_text() + "\n# edited\n")
        assert grm.fingerprint_model(copy) != model.ref.artifact_sha256

    def test_a_model_among_run_artifacts(self, store: Store) -> None:
        """A model stored as plain run artifacts (MLflow 2 style) reads by its run path."""
        model = grm.describe(f"runs:/{store.run_id}/legacy", **store.kw())
        assert model.ref.name == "legacy"
        assert model.ref.version == f"run-{store.run_id}"
        assert model.run_id == store.run_id
        assert model.features == FEATURES
        assert model.model_id is None or model.model_id.startswith("m-")

    def test_a_local_directory(self, store: Store) -> None:
        """A downloaded model directory reads in place, with the run it records."""
        downloaded = grm.describe("models:/fraud/1", **store.kw())
        local = grm.describe(downloaded.path)
        assert local.ref.artifact_sha256 == downloaded.ref.artifact_sha256
        assert local.ref.feature_schema == downloaded.ref.feature_schema
        assert local.ref.version == f"run-{store.run_id}"
        assert local.path == downloaded.path

    def test_feature_schema_is_the_signature_fingerprint(self, store: Store) -> None:
        """The feature-schema fingerprint is the sha256 of the signature's input schema."""
        from mlflow.models import Model

        model = grm.describe("models:/fraud/1", **store.kw())
        inputs = Model.load(model.path).signature.inputs.to_dict()
        canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), allow_nan=False)
        assert model.ref.feature_schema == gr.fingerprint_bytes(canonical.encode())
        assert model.inputs == (("amount", "double"), ("age", "double"), ("score", "double"))

    def test_model_ref_is_describe_ref(self, store: Store) -> None:
        """model_ref is the ModelRef of describe."""
        assert grm.model_ref("models:/fraud/1", **store.kw()) == (
            grm.describe("models:/fraud/1", **store.kw()).ref
        )


class TestBadInput:
    @pytest.mark.parametrize(
        "uri",
        [
            "models:/nobody/1",
            "models:/fraud/99",
            "models:/fraud@nobody",
            "models:/fraud",
            "runs:/0123456789abcdef0123456789abcdef/model",
            "models:/m-0123456789abcdef",
        ],
    )
    def test_unknown_uri_is_model_not_found(self, store: Store, uri: str) -> None:
        """An unknown name, version, alias, run or model id is a ModelNotFoundError naming it."""
        with pytest.raises(ModelNotFoundError, match=uri.split(":/")[1][:8]):
            grm.describe(uri, **store.kw())

    def test_unknown_path_is_model_not_found(self, store: Store) -> None:
        """A path without an MLmodel file is a ModelNotFoundError naming the path."""
        with pytest.raises(ModelNotFoundError, match="MLmodel"):
            grm.describe(str(store.root / "nowhere"))

    def test_unknown_artifact_in_a_run(self, store: Store) -> None:
        """A run path that holds no model is a ModelNotFoundError, not an MLflow exception."""
        with pytest.raises(ModelNotFoundError) as caught:
            grm.describe(f"runs:/{store.run_id}/nothing", **store.kw())
        assert "runs:/" in str(caught.value)
        assert isinstance(caught.value, LookupError)

    def test_an_unknown_scheme_is_a_registry_error(self, store: Store) -> None:
        """A URI of a scheme MLflow cannot read is a RegistryError naming the URI."""
        with pytest.raises(RegistryError, match="nonsense:/model") as caught:
            grm.describe("nonsense:/model", **store.kw())
        assert type(caught.value.__cause__).__module__.startswith("mlflow")

    def test_missing_signature_raises_by_default(self, store: Store) -> None:
        """A model without a signature is a MissingSignatureError naming the URI."""
        with pytest.raises(MissingSignatureError, match="unsigned"):
            grm.describe(store.unsigned_uri, **store.kw())

    def test_missing_signature_reported_by_policy(self, store: Store) -> None:
        """With on_missing_signature='report' an event says so and the ref has no schema."""
        with capture_events() as events:
            model = grm.describe(store.unsigned_uri, on_missing_signature="report", **store.kw())
        assert model.ref.feature_schema is None
        assert model.inputs == ()
        missing = [e for e in events if isinstance(e, grm.SignatureMissing)]
        assert [e.uri for e in missing] == [store.unsigned_uri]
        assert missing[0].level == "warning"

    def test_unreachable_server_is_a_typed_error(self) -> None:
        """A tracking server that nobody listens on is a RegistryUnreachableError, quickly."""
        server = f"http://127.0.0.1:{free_port()}"
        started = time.monotonic()
        with pytest.raises(RegistryUnreachableError, match="unreachable"):
            grm.describe("models:/fraud/1", tracking_uri=server, timeout=5.0)
        assert time.monotonic() - started < 30

    def test_silent_server_times_out(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A server that accepts connections but never answers is a time-out error."""
        # MLflow's own request goes on in the background; keep it short.
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(16)
            server = f"http://127.0.0.1:{silent.getsockname()[1]}"
            started = time.monotonic()
            with pytest.raises(RegistryUnreachableError, match="did not answer within 1 s"):
                grm.describe("models:/fraud/1", tracking_uri=server, timeout=1.0)
            assert time.monotonic() - started < 30

    def test_bad_policy_is_a_config_error(self, store: Store) -> None:
        """An unknown missing-signature policy is refused before MLflow is asked."""
        with pytest.raises(ConfigError, match="on_missing_signature"):
            grm.describe("models:/fraud/1", on_missing_signature="ignore", **store.kw())  # type: ignore[arg-type]

    def test_registry_errors_are_runtime_errors(self) -> None:
        """Every registry error is a RegistryError and a RuntimeError."""
        for error in (ModelNotFoundError, ReferenceNotFoundError, RegistryUnreachableError):
            assert issubclass(error, RegistryError)
            assert issubclass(error, RuntimeError)


class TestReference:
    def test_round_trip_by_uri(self, store: Store) -> None:
        """A reference saved with a model loads back by any URI of the model."""
        artifact = grm.save_reference("models:/fraud/1", store.reference, **store.kw())
        assert artifact.startswith(f"runs:/{store.run_id}/guardrail/")
        for uri in ("models:/fraud@champion", f"runs:/{store.run_id}/model"):
            assert grm.load_reference(uri, **store.kw()) == store.reference

    def test_a_profile_of_other_features_is_refused(self, store: Store) -> None:
        """Saving a profile whose features differ from the signature names them, writes nothing."""
        other = gr.Profile.from_columns(
            {"amount": np.arange(10.0), "country": np.array(["FR", "DE"] * 5, dtype=object)}
        )
        with pytest.raises(SignatureMismatchError) as caught:
            grm.save_reference("models:/fraud/1", other, **store.kw())
        assert caught.value.missing == ("age", "score")
        assert caught.value.unexpected == ("country",)
        assert "age" in str(caught.value)
        assert "country" in str(caught.value)

    def test_a_feature_of_the_wrong_kind_is_named(self, store: Store) -> None:
        """A categorical profile for a numeric input is a mismatch naming the feature."""
        columns = {name: store.frame[name].to_numpy() for name in FEATURES}
        columns["age"] = np.array(["young", "old"] * 150, dtype=object)
        with pytest.raises(SignatureMismatchError, match="age") as caught:
            grm.save_reference("models:/fraud/1", gr.Profile.from_columns(columns), **store.kw())
        assert caught.value.wrong_kind == ("age",)

    def test_a_stored_profile_of_another_model_is_refused(self, store: Store) -> None:
        """A stored reference recorded for other model files is a ModelMismatchError."""
        model = grm.describe("models:/fraud/1", **store.kw())
        other = attrs.evolve(model.ref, artifact_sha256="0" * 64)
        document = {
            "format": "guardrail.mlflow_reference",
            "version": 1,
            "model": other.to_dict(),
            "profile": store.reference.to_dict(),
        }
        import mlflow

        folder = f"guardrail/{model.model_id}"
        client = mlflow.MlflowClient(tracking_uri=store.tracking)
        client.log_text(store.run_id, json.dumps(document), f"{folder}/reference.json")
        try:
            with pytest.raises(ModelMismatchError, match="another model"):
                grm.load_reference("models:/fraud/1", **store.kw())
        finally:
            grm.save_reference("models:/fraud/1", store.reference, **store.kw())

    def test_no_stored_reference(self, store: Store) -> None:
        """No stored reference is a ReferenceNotFoundError that says how to store one."""
        with pytest.raises(ReferenceNotFoundError, match="save_reference"):
            grm.load_reference(store.unsigned_uri, on_missing_signature="report", **store.kw())


class TestGuardModel:
    def test_one_call_gives_a_guarded_classifier(self, store: Store) -> None:
        """guard_model returns predict_proba as Probability with the model's provenance."""
        grm.save_reference("models:/fraud/1", store.reference, **store.kw())
        predict = grm.guard_model("models:/fraud@champion", **store.kw())
        row = store.frame.iloc[0].to_dict()
        prediction = predict(row)
        assert isinstance(prediction.value, gr.Probability)
        expected = store.clf.predict_proba(store.frame.iloc[[0]])[0, 1]
        assert prediction.value.value == pytest.approx(expected)
        assert prediction.model == grm.model_ref("models:/fraud/1", **store.kw())

    def test_batches_in_every_shape(self, store: Store) -> None:
        """A DataFrame, a list of rows and a 2-D array in signature order give the same scores."""
        predict = grm.guard_model("models:/fraud/1", reference=None, **store.kw())
        frame = store.frame.iloc[:5]
        expected = store.clf.predict_proba(frame)[:, 1]
        for batch in (frame, frame.to_dict("records"), frame.to_numpy()):
            assert np.allclose(predict(batch).value.value, expected)

    def test_the_stored_reference_watches_inputs(self, store: Store) -> None:
        """The guard's skew monitor uses the stored reference: a wrong type is reported."""
        grm.save_reference("models:/fraud/1", store.reference, **store.kw())
        predict = grm.guard_model("models:/fraud/1", **store.kw())
        guard = gr.guard_of(predict)
        assert guard.config.inputs is not None
        assert guard.config.inputs.reference == store.reference
        assert (
            guard.model.artifact_sha256
            == grm.describe("models:/fraud/1", **store.kw()).ref.artifact_sha256
        )

    def test_a_threshold_gives_decisions(self, store: Store) -> None:
        """With a threshold, the guarded model returns decisions."""
        predict = grm.guard_model(
            "models:/fraud/1",
            reference=None,
            threshold=gr.Threshold(0.5, gr.Probability),
            consumers=("card-blocker",),
            **store.kw(),
        )
        decision = predict(store.frame.iloc[0].to_dict())
        assert isinstance(decision, gr.Decision)
        assert decision.prediction.model.consumers == ("card-blocker",)

    def test_a_given_reference_is_checked(self, store: Store) -> None:
        """A reference passed in is checked against the signature too."""
        other = gr.Profile.from_columns({"amount": np.arange(10.0)})
        with pytest.raises(SignatureMismatchError, match="age"):
            grm.guard_model("models:/fraud/1", reference=other, **store.kw())


class TestImport:
    def test_import_guardrail_does_not_import_mlflow(self) -> None:
        """import guardrail (and guardrail.mlflow) leaves MLflow unimported until used."""
        code = (
            "import sys, guardrail, guardrail.mlflow\n"
            "assert 'mlflow' not in sys.modules, 'imported'\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)

    def test_without_mlflow_the_message_names_the_extra(self) -> None:
        """Without MLflow installed, importing guardrail.mlflow names the extra to install."""
        code = (
            "import importlib.util as u\n"
            "_find = u.find_spec\n"
            "u.find_spec = lambda name, *a: None if name == 'mlflow' else _find(name, *a)\n"
            "try:\n"
            "    import guardrail.mlflow\n"
            "except ModuleNotFoundError as e:\n"
            "    print(e)\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        out = subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            env=env,
            timeout=60,
            capture_output=True,
            text=True,
        ).stdout
        assert "pip install 'guardrail-sdk[mlflow]'" in out

    def test_public_names_report_guardrail_mlflow(self) -> None:
        """guardrail.mlflow's __all__ is sorted and its names report the public module."""
        assert grm.__all__ == sorted(grm.__all__)
        for name in grm.__all__:
            assert getattr(grm, name).__module__ == "guardrail.mlflow", name


class TestHowTo:
    def test_the_how_to_runs_as_written(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every python block of docs/how-to/mlflow.md runs, in order, in one namespace."""
        import re

        import mlflow

        page = Path(__file__).resolve().parent.parent / "docs" / "how-to" / "mlflow.md"
        found = re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.S | re.M)
        assert len(found) >= 4
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        gr.configure(hooks=[])
        namespace: dict[str, object] = {"__name__": "__doc_example__"}
        try:
            for number, code in enumerate(found, 1):
                exec(compile(code, f"{page.name}[{number}]", "exec"), namespace)
        finally:
            mlflow.set_tracking_uri(None)
        assert namespace["prediction"].model.version == "1"  # type: ignore[attr-defined]
        assert list(tmp_path.iterdir()) == []


class MlflowServer:
    """One ``mlflow server`` process on a free loopback port, with its own store."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server",
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--workers", "1",
                "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
                "--artifacts-destination", (root / "served").as_uri(),
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,  # its workers are stopped with it, as one group
        )  # fmt: skip

    def wait(self, seconds: float) -> str | None:
        """None once the server answers /health; else why it did not."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"mlflow server exited with {self.process.returncode}"
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return None
            except OSError:
                time.sleep(0.5)
        return f"mlflow server did not answer /health within {seconds:g} s"

    def stop(self) -> None:
        """Stop the server and its workers (its own process group)."""
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        # Workers wait for idle keep-alive connections to close; don't wait for them.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server() -> Iterator[MlflowServer]:
    root = Path(tempfile.mkdtemp(prefix="guardrail-mlflow-server-"))
    running = MlflowServer(root)
    try:
        why = running.wait(180)
        if why is not None:
            tail = running.log.read_text(errors="replace")[-2000:]
            if "Address already in use" in tail:
                pytest.skip(f"{why}: the free port was taken meanwhile")
            pytest.fail(f"{why}\n{tail}")
        yield running
    finally:
        running.stop()
        shutil.rmtree(root, ignore_errors=True)


class TestServer:
    def test_the_whole_path_against_a_server(self, server: MlflowServer) -> None:
        """Against a real mlflow server: describe, store and load the reference, guard."""
        logged = log_models(
            server.url, "mlflow-artifacts:/guardrail", "fraud-served", unsigned=False
        )
        kw = {"tracking_uri": server.url}
        model = grm.describe("models:/fraud-served@champion", **kw)
        assert (model.ref.name, model.ref.version, model.flavor) == ("fraud-served", "1", "sklearn")
        assert model.run_id == logged["run_id"]
        reference = gr.Profile.from_pandas(logged["frame"])
        grm.save_reference("models:/fraud-served/1", reference, **kw)
        assert grm.load_reference(f"runs:/{logged['run_id']}/model", **kw) == reference
        predict = grm.guard_model("models:/fraud-served/1", **kw)
        row = logged["frame"].iloc[0].to_dict()
        expected = logged["clf"].predict_proba(logged["frame"].iloc[[0]])[0, 1]
        assert predict(row).value.value == pytest.approx(expected)
        with pytest.raises(ModelNotFoundError, match="fraud-served/9"):
            grm.describe("models:/fraud-served/9", **kw)
