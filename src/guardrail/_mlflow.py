"""Models from an MLflow registry: their provenance, their reference profile, a guard.

Only MLflow's public API is used (``MlflowClient``, ``mlflow.artifacts``,
``mlflow.models.Model``, the flavors' ``load_model``). Every MLflow failure is
wrapped in a :class:`~guardrail.errors.RegistryError` naming the URI; every
call to the registry runs under a time-out, so an unreachable server is a
:class:`~guardrail.errors.RegistryUnreachableError`, not a hang.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import os
import socket
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from hashlib import sha256
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, TypeVar

import attrs
import numpy as np

from ._call import Source
from ._errors import (
    ConfigError,
    FormatError,
    GuardrailError,
    MissingSignatureError,
    ModelMismatchError,
    ModelNotFoundError,
    ProfileFormatError,
    ReferenceNotFoundError,
    RegistryError,
    RegistryUnreachableError,
    SignatureMismatchError,
)
from ._events import Event, Level
from ._hooks import emit
from ._model import ModelRef, canonical_json, fingerprint_bytes, fingerprint_file
from ._profile import Profile

if importlib.util.find_spec("mlflow") is None:  # pragma: no cover - the dev extra has it
    raise ModuleNotFoundError(
        "guardrail.mlflow needs MLflow: pip install 'guardrail-sdk[mlflow]'", name="mlflow"
    )

__all__ = [
    "MlflowModel",
    "SignatureMissing",
    "describe",
    "fingerprint_model",
    "guard_model",
    "load_reference",
    "model_ref",
    "save_reference",
]

T = TypeVar("T")
MissingSignaturePolicy = Literal["raise", "report"]

#: Files a download writes beside the model's own, which differ per download.
PER_DOWNLOAD: Final = frozenset({"registered_model_meta"})
#: The document :func:`save_reference` stores.
FORMAT: Final = "guardrail.mlflow_reference"
VERSION: Final = 1
#: Where in the model's run the reference is stored: ``guardrail/<model name>/``.
ARTIFACT_DIR: Final = "guardrail"
ARTIFACT_FILE: Final = "reference.json"
_NUMERIC_TYPES: Final = frozenset({"double", "float", "long", "integer", "boolean"})
_CATEGORICAL_TYPES: Final = frozenset({"string", "boolean", "binary"})
_NOT_FOUND: Final = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})


@attrs.frozen
class SignatureMissing(Event):
    """A model was logged without an input signature; its inputs are unchecked.

    Emitted instead of raising when ``on_missing_signature="report"``.
    """

    kind: ClassVar[str] = "mlflow.signature_missing"
    level: ClassVar[Level] = "warning"
    uri: str


@attrs.frozen
class MlflowModel:
    """An MLflow model as guardrail sees it: where it is and what it is.

    ``ref`` is the :class:`~guardrail.ModelRef` its predictions carry; the
    rest is what MLflow knows beyond it. ``inputs`` is the signature's input
    schema as ``(name, type)`` pairs (``()`` without a signature), ``path``
    the local directory the model's files were downloaded to.
    """

    uri: str
    ref: ModelRef
    registered_name: str | None
    registered_version: str | None
    run_id: str | None
    model_id: str | None
    flavor: str
    inputs: tuple[tuple[str, str], ...]
    path: str

    @property
    def features(self) -> tuple[str, ...]:
        """The signature's input names, in order."""
        return tuple(name for name, _ in self.inputs)


# ---------------------------------------------------------------------------
# Calling MLflow: a time-out, and MLflow's exceptions wrapped


def _call(uri: str, timeout: float, what: str, fn: Callable[[], T]) -> T:
    """Run *fn* (which talks to MLflow) in a worker, wait at most *timeout* seconds.

    A worker, because MLflow's HTTP client retries with back-off for minutes
    and offers no per-call time-out. The worker is a daemon: if it is still
    waiting when we give up, it never holds the process open.
    """
    outcome: list[Any] = []

    def work() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            outcome.append((False, e))

    worker = threading.Thread(target=work, name=f"guardrail-mlflow-{what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise RegistryUnreachableError(
            f"{uri}: the MLflow registry did not answer within {timeout:g} s ({what})"
        )
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise _wrap(uri, what, value) from value


def _wrap(uri: str, what: str, error: BaseException) -> BaseException:
    if isinstance(error, GuardrailError) or not isinstance(error, Exception):
        return error
    from mlflow.exceptions import MlflowException

    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, MlflowException):
        # An unknown alias is an "invalid parameter" to MLflow, but not found to a user.
        if error.error_code in _NOT_FOUND or (
            error.error_code == "INVALID_PARAMETER_VALUE" and "not found" in message.lower()
        ):
            return ModelNotFoundError(f"{uri}: {message}")
        return RegistryError(f"{uri}: MLflow failed to {what}: {message}")
    if isinstance(error, (ConnectionError, TimeoutError)) or "Connection" in type(error).__name__:
        return RegistryUnreachableError(f"{uri}: the MLflow registry is unreachable: {message}")
    return RegistryError(f"{uri}: MLflow failed to {what}: {type(error).__name__}: {message}")


def _probe(uri: str, server: str | None, timeout: float) -> None:
    """Fail fast when an HTTP tracking server is not listening at all."""
    if not server:
        return
    parts = urllib.parse.urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as e:
        raise RegistryUnreachableError(
            f"{uri}: the MLflow server at {server} is unreachable: {e}"
        ) from e


def _client(tracking_uri: str | None, registry_uri: str | None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


def _servers(tracking_uri: str | None, registry_uri: str | None) -> tuple[str, str]:
    import mlflow

    tracking = tracking_uri or mlflow.get_tracking_uri()
    return tracking, registry_uri or (
        mlflow.get_registry_uri() if tracking_uri is None else tracking
    )


# ---------------------------------------------------------------------------
# Fingerprints


def fingerprint_model(path: str | os.PathLike[str]) -> str:
    """The sha256 of an MLflow model directory's files, stable across downloads.

    Each file under *path* (recursively) contributes one line,
    ``<path relative to the model, with "/">\\0<sha256 of its contents>\\n``;
    the lines are sorted by path and hashed together. Files a download writes
    beside the model (``registered_model_meta``, at the top) are left out, so
    the same logged model gives the same hash whether it was fetched as
    ``models:/name/1``, ``models:/name@alias`` or ``runs:/id/name``. A model
    logged again (even the same estimator) is a new hash: its ``MLmodel``
    records a new id and time.
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelNotFoundError(f"{path}: not a model directory")
    lines = []
    for file in root.rglob("*"):
        if not file.is_file():
            continue
        relative = file.relative_to(root).as_posix()
        if relative in PER_DOWNLOAD:
            continue
        lines.append(f"{relative}\0{fingerprint_file(file)}\n")
    digest = sha256()
    for line in sorted(lines):
        digest.update(line.encode())
    return digest.hexdigest()


def _inputs_of(signature: Any) -> tuple[tuple[str, str], ...]:
    """The signature's inputs as (name, type); tensor inputs are named by position."""
    out = []
    for i, spec in enumerate(signature.inputs.to_dict()):
        name = spec.get("name")
        kind = spec.get("type", "")
        if kind == "tensor":
            kind = f"tensor[{spec.get('tensor-spec', {}).get('dtype', '')}]"
        out.append((str(name) if name is not None else str(i), str(kind)))
    return tuple(out)


def _schema_fingerprint(signature: Any) -> str:
    """The sha256 of the canonical JSON of the signature's input schema."""
    return fingerprint_bytes(canonical_json(signature.inputs.to_dict()).encode())


# ---------------------------------------------------------------------------
# Resolving a URI


@attrs.frozen
class _Located:
    registered_name: str | None
    registered_version: str | None
    run_id: str | None
    model_id: str | None
    name: str | None
    download_uri: str | None  # None: a local directory, read in place
    local: str | None


def _quoted(text: str) -> str:
    """*text* inside a single-quoted MLflow search filter."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _locate(uri: str, tracking: str, registry: str) -> _Located:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme in ("models", "runs"):
        client = _client(tracking, registry)
    if parts.scheme == "models":
        body = uri[len("models:/") :].strip("/")
        if body.startswith("m-") and "/" not in body and "@" not in body:
            logged = client.get_logged_model(body)
            return _Located(
                None, None, logged.source_run_id, logged.model_id, logged.name,
                logged.artifact_location, None,
            )  # fmt: skip
        if "@" in body:
            name, _, alias = body.partition("@")
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = body.partition("/")
            if not name or not number or "/" in number:
                raise ModelNotFoundError(
                    f"{uri}: a registry URI is models:/<name>/<version> or models:/<name>@<alias>"
                )
            if number == "latest":
                client.get_registered_model(name)  # an unknown name is a clear not-found
                versions = client.search_model_versions(f"name = '{_quoted(name)}'")
                if not versions:
                    raise ModelNotFoundError(f"{uri}: model {name!r} has no versions")
                version = max(versions, key=lambda v: int(v.version))
            else:
                version = client.get_model_version(name, number)
        model_id = getattr(version, "model_id", None)
        download = client.get_model_version_download_uri(version.name, version.version)
        return _Located(
            version.name, str(version.version), version.run_id, model_id, version.name,
            download, None,
        )  # fmt: skip
    if parts.scheme == "runs":
        body = uri[len("runs:/") :].strip("/")
        run_id, _, artifact = body.partition("/")
        if not run_id or not artifact:
            raise ModelNotFoundError(f"{uri}: a run URI is runs:/<run id>/<model path>")
        run = client.get_run(run_id)  # an unknown run is a clear not-found
        # Since MLflow 3 a model logged in a run is a "logged model" of its own,
        # stored apart from the run's artifacts; earlier ones are run artifacts.
        logged = client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{_quoted(run_id)}' AND name = '{_quoted(artifact)}'",
        )
        if logged:
            model = logged[0]
            return _Located(
                None, None, run_id, model.model_id, artifact, model.artifact_location, None
            )
        return _Located(None, None, run_id, None, artifact, uri, None)
    if parts.scheme in ("", "file") and len(parts.scheme) != 1:
        local = urllib.parse.unquote(parts.path) if parts.scheme == "file" else uri
        if not Path(local, "MLmodel").is_file():
            raise ModelNotFoundError(f"{uri}: no MLmodel file, so not an MLflow model directory")
        return _Located(None, None, None, None, Path(local).resolve().name, None, local)
    return _Located(None, None, None, None, None, uri, None)


def _download(uri: str, located: _Located, tracking_uri: str | None, into: str | None) -> str:
    if located.local is not None:
        return located.local
    import mlflow

    destination = into or tempfile.mkdtemp(prefix="guardrail-mlflow-")
    source = located.download_uri or uri
    if source.startswith("runs:/"):  # a model stored among its run's artifacts
        _, _, artifact = source[len("runs:/") :].strip("/").partition("/")
        path: str = mlflow.artifacts.download_artifacts(
            run_id=located.run_id,
            artifact_path=artifact,
            dst_path=destination,
            tracking_uri=tracking_uri,
        )
    else:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=destination, tracking_uri=tracking_uri
        )
    return path


def _trained_at(created: Any) -> _dt.datetime | None:
    if created is None:
        return None
    if isinstance(created, _dt.datetime):
        when = created
    else:
        try:
            when = _dt.datetime.fromisoformat(str(created))
        except ValueError:
            return None
    return when if when.utcoffset() is not None else when.replace(tzinfo=_dt.UTC)


def describe(
    uri: str,
    *,
    on_missing_signature: MissingSignaturePolicy = "raise",
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    timeout: float = 30.0,
    download_to: str | os.PathLike[str] | None = None,
) -> MlflowModel:
    """Find the MLflow model at *uri*, download it, and say what it is.

    Args:
        uri: ``models:/<name>/<version>``, ``models:/<name>@<alias>``,
            ``models:/<name>/latest``, ``models:/<model id>``,
            ``runs:/<run id>/<model path>``, or a local model directory.
        on_missing_signature: A model logged without an input signature is a
            :class:`~guardrail.errors.MissingSignatureError` (``"raise"``),
            or a :class:`SignatureMissing` event and a reference without a
            feature schema (``"report"``).
        tracking_uri: The tracking store (``sqlite:///...``,
            ``http://host:5000``); MLflow's current one by default.
        registry_uri: The model registry; the tracking store by default.
        timeout: Seconds to wait for the registry, per step (finding the
            model, downloading it). A step still running then is left to
            finish in the background; the call raises
            :class:`~guardrail.errors.RegistryUnreachableError` at once.
        download_to: Where to put the model's files; by default a new
            temporary directory, which is the caller's to remove
            (``MlflowModel.path``). A local model directory is read in place.

    The :class:`~guardrail.ModelRef`'s ``name`` and ``version`` are the
    registered name and version; for a model that is not registered, the
    model's name (its path in the run, or its directory) and ``run-<run id>``
    (or ``sha256-<first 12 hex digits>`` for a directory without a run).
    ``artifact_sha256`` is :func:`fingerprint_model`; ``feature_schema`` the
    sha256 of the canonical JSON of the signature's input schema;
    ``trained_at`` the time MLflow logged the model.
    """
    if on_missing_signature not in ("raise", "report"):
        raise ConfigError(
            f"on_missing_signature must be 'raise' or 'report', got {on_missing_signature!r}"
        )
    if not isinstance(uri, str) or not uri:
        raise ConfigError(f"an MLflow model URI is a non-empty string, got {uri!r}")
    tracking, registry = _servers(tracking_uri, registry_uri)
    if uri.startswith(("models:", "runs:")):
        _probe(uri, registry if uri.startswith("models:") else tracking, timeout)
        _probe(uri, tracking, timeout)
    located = _call(uri, timeout, "find the model", lambda: _locate(uri, tracking, registry))
    into = None if download_to is None else os.fspath(download_to)
    path = _call(
        uri, timeout, "download the model", lambda: _download(uri, located, tracking, into)
    )
    return _read(uri, located, path, on_missing_signature)


def _read(
    uri: str, located: _Located, path: str, on_missing_signature: MissingSignaturePolicy
) -> MlflowModel:
    from mlflow.models import Model

    try:
        meta = Model.load(path)
    except Exception as e:
        raise ModelNotFoundError(f"{uri}: not an MLflow model: {e}") from e
    flavors = [f for f in meta.flavors if f != "python_function"]
    flavor = flavors[0] if flavors else "python_function"
    sha = fingerprint_model(path)
    run_id = located.run_id or meta.run_id
    signature = meta.signature
    name = located.registered_name or located.name or "model"
    if located.registered_version is not None:
        version = located.registered_version
    elif run_id:
        version = f"run-{run_id}"
    else:
        version = f"sha256-{sha[:12]}"
    ref = ModelRef(
        name=name,
        version=version,
        artifact_sha256=sha,
        feature_schema=None if signature is None else _schema_fingerprint(signature),
        trained_at=_trained_at(getattr(meta, "utc_time_created", None)),
    )
    if signature is None:
        message = (
            f"{uri}: the model has no signature, so its inputs are unchecked; log it with "
            "signature=mlflow.models.infer_signature(X, y)"
        )
        if on_missing_signature == "raise":
            raise MissingSignatureError(message)
        emit(SignatureMissing(source=Source("mlflow", "registry", None, ref), uri=uri))
    return MlflowModel(
        uri=uri,
        ref=ref,
        registered_name=located.registered_name,
        registered_version=located.registered_version,
        run_id=run_id or None,
        model_id=located.model_id or getattr(meta, "model_id", None),
        flavor=flavor,
        inputs=() if signature is None else _inputs_of(signature),
        path=path,
    )


def model_ref(
    uri: str,
    *,
    on_missing_signature: MissingSignaturePolicy = "raise",
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    timeout: float = 30.0,
) -> ModelRef:
    """The :class:`~guardrail.ModelRef` of the MLflow model at *uri* (see :func:`describe`)."""
    with tempfile.TemporaryDirectory(prefix="guardrail-mlflow-") as into:
        return describe(
            uri,
            on_missing_signature=on_missing_signature,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            timeout=timeout,
            download_to=into,
        ).ref


# ---------------------------------------------------------------------------
# The reference profile, stored with the model


def check_reference(model: MlflowModel, reference: Profile) -> None:
    """Raise SignatureMismatchError unless *reference* profiles the model's inputs."""
    if not model.inputs:
        return
    signature = dict(model.inputs)
    names = set(reference.names)
    missing = tuple(n for n in signature if n not in names)
    unexpected = tuple(n for n in reference.names if n not in signature)
    wrong_kind = []
    for feature in reference:
        kind = signature.get(feature.name)
        if kind is None:
            continue
        allowed = (
            _NUMERIC_TYPES if type(feature).__name__ == "NumericProfile" else _CATEGORICAL_TYPES
        )
        if kind not in allowed and not kind.startswith("tensor"):
            wrong_kind.append(feature.name)
    if missing or unexpected or wrong_kind:
        said = []
        if missing:
            said.append(f"missing from the profile: {list(missing)}")
        if unexpected:
            said.append(f"not inputs of the model: {list(unexpected)}")
        if wrong_kind:
            said.append(
                "of another kind than the signature's type: "
                + ", ".join(f"{n} ({signature[n]})" for n in wrong_kind)
            )
        raise SignatureMismatchError(
            f"{model.uri}: the reference profile does not match the model's signature; "
            + "; ".join(said),
            missing=missing,
            unexpected=unexpected,
            wrong_kind=tuple(wrong_kind),
        )


def _artifact_dir(model: MlflowModel) -> str:
    name = (model.model_id or model.ref.name).replace("/", "_")
    return f"{ARTIFACT_DIR}/{name}"


def save_reference(
    uri: str,
    reference: Profile,
    *,
    on_missing_signature: MissingSignaturePolicy = "raise",
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    timeout: float = 30.0,
) -> str:
    """Store *reference* with the MLflow model at *uri*; return its artifact URI.

    The profile is written as an artifact of the model's run, at
    ``guardrail/<model id or name>/reference.json``, in a document that also
    records the model's :class:`~guardrail.ModelRef`:
    ``{"format": "guardrail.mlflow_reference", "version": 1, "model": ...,
    "profile": ...}``. A profile whose features are not the signature's
    inputs is refused (:class:`~guardrail.errors.SignatureMismatchError`)
    before anything is written. Nothing else is written to the registry.
    """
    if not isinstance(reference, Profile):
        raise ConfigError(f"reference must be a Profile, got {type(reference).__name__}")
    with tempfile.TemporaryDirectory(prefix="guardrail-mlflow-") as into:
        model = describe(
            uri,
            on_missing_signature=on_missing_signature,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            timeout=timeout,
            download_to=into,
        )
    check_reference(model, reference)
    if model.run_id is None:
        raise RegistryError(f"{uri}: the model belongs to no run, so there is nowhere to store it")
    run_id = model.run_id
    document = canonical_json(
        {
            "format": FORMAT,
            "version": VERSION,
            "model": model.ref.to_dict(),
            "profile": reference.to_dict(),
        }
    )
    folder = _artifact_dir(model)
    tracking, registry = _servers(tracking_uri, registry_uri)
    client = _client(tracking, registry)
    _call(
        uri,
        timeout,
        "store the reference",
        lambda: client.log_text(run_id, document, f"{folder}/{ARTIFACT_FILE}"),
    )
    return f"runs:/{run_id}/{folder}/{ARTIFACT_FILE}"


def _read_reference(uri: str, text: str, model: MlflowModel) -> Profile:
    import json

    try:
        data = json.loads(text)
    except ValueError as e:
        raise FormatError(f"{uri}: the stored reference is not JSON: {e}") from e
    if not isinstance(data, Mapping) or set(data) != {"format", "version", "model", "profile"}:
        raise FormatError(
            f'{uri}: a stored reference is {{"format": "{FORMAT}", "version": {VERSION}, '
            '"model": {...}, "profile": {...}}'
        )
    if data["format"] != FORMAT or data["version"] != VERSION:
        raise FormatError(
            f"{uri}: not a reference this guardrail reads: "
            f"format {data['format']!r} version {data['version']!r}"
        )
    recorded = ModelRef.from_dict(data["model"])
    if recorded.artifact_sha256 != model.ref.artifact_sha256:
        raise ModelMismatchError(
            f"{uri}: the stored reference was recorded for another model "
            f"({recorded.name} {recorded.version}, artifact {recorded.artifact_sha256}); "
            f"this model's artifact is {model.ref.artifact_sha256}"
        )
    try:
        profile = Profile.from_dict(data["profile"])
    except ProfileFormatError as e:
        raise FormatError(f"{uri}: the stored reference profile is malformed: {e}") from e
    check_reference(model, profile)
    return profile


def _fetch_reference(model: MlflowModel, tracking: str, timeout: float) -> Profile:
    import mlflow

    uri = model.uri
    if model.run_id is None:
        raise ReferenceNotFoundError(f"{uri}: the model belongs to no run, so has no reference")
    run_id = model.run_id
    path = f"{_artifact_dir(model)}/{ARTIFACT_FILE}"

    def fetch() -> str:
        with tempfile.TemporaryDirectory(prefix="guardrail-mlflow-") as into:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=into, tracking_uri=tracking
            )
            return Path(local).read_text(encoding="utf-8")

    try:
        text = _call(uri, timeout, "load the reference", fetch)
    except ModelNotFoundError as e:
        raise ReferenceNotFoundError(
            f"{uri}: no reference profile stored with the model (looked for "
            f"runs:/{run_id}/{path}); store one with guardrail.mlflow.save_reference"
        ) from e
    return _read_reference(uri, text, model)


def load_reference(
    uri: str,
    *,
    on_missing_signature: MissingSignaturePolicy = "raise",
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    timeout: float = 30.0,
) -> Profile:
    """The reference profile stored with the MLflow model at *uri*.

    Refuses a profile recorded for another model
    (:class:`~guardrail.errors.ModelMismatchError`) or whose features are not
    the model's signature inputs (:class:`~guardrail.errors.SignatureMismatchError`,
    naming them); :class:`~guardrail.errors.ReferenceNotFoundError` when none
    was stored.
    """
    with tempfile.TemporaryDirectory(prefix="guardrail-mlflow-") as into:
        model = describe(
            uri,
            on_missing_signature=on_missing_signature,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            timeout=timeout,
            download_to=into,
        )
    tracking, _ = _servers(tracking_uri, registry_uri)
    return _fetch_reference(model, tracking, timeout)


# ---------------------------------------------------------------------------
# A guard in one call


def _frame(inputs: Any, names: Sequence[str]) -> tuple[Any, bool]:
    """A DataFrame with the model's columns, and whether *inputs* was one row."""
    import pandas as pd

    columns = list(names) or None
    if isinstance(inputs, pd.DataFrame):
        return (inputs[columns] if columns else inputs), False
    if type(inputs).__module__.startswith("pyarrow"):
        frame = inputs.to_pandas()
        return (frame[columns] if columns else frame), False
    if isinstance(inputs, Mapping):
        values = list(inputs.values())
        if values and all(np.ndim(v) == 0 for v in values):
            frame = pd.DataFrame([dict(inputs)])
            return (frame[columns] if columns else frame), True
        frame = pd.DataFrame(dict(inputs))
        return (frame[columns] if columns else frame), False
    if isinstance(inputs, np.ndarray):
        if inputs.ndim == 1:
            return pd.DataFrame([inputs], columns=columns), True
        return pd.DataFrame(inputs, columns=columns), False
    if isinstance(inputs, (list, tuple)):
        if inputs and isinstance(inputs[0], Mapping):
            frame = pd.DataFrame(list(inputs))
            return (frame[columns] if columns else frame), False
        if inputs and np.ndim(inputs[0]) == 1:
            return pd.DataFrame(list(inputs), columns=columns), False
        return pd.DataFrame([list(inputs)], columns=columns), True
    raise ConfigError(f"cannot read model inputs from a {type(inputs).__name__}")


def _predictor(model: MlflowModel) -> tuple[Callable[[Any], Any], bool]:
    """The model's predict function, and whether it returns probabilities."""
    names = model.features
    if model.flavor == "sklearn":
        import mlflow.sklearn

        estimator = mlflow.sklearn.load_model(model.path)
        if hasattr(estimator, "predict_proba"):

            def predict_proba(inputs: Any) -> Any:
                frame, single = _frame(inputs, names)
                scores = np.asarray(estimator.predict_proba(frame))[:, -1]
                return float(scores[0]) if single else scores

            return predict_proba, True
        score = estimator.predict
    else:
        import mlflow.pyfunc

        score = mlflow.pyfunc.load_model(model.path).predict

    def predict(inputs: Any) -> Any:
        frame, single = _frame(inputs, names)
        scores = np.asarray(score(frame), dtype=np.float64)
        if scores.ndim == 2:
            scores = scores[:, -1]
        return float(scores.reshape(-1)[0]) if single else scores.reshape(-1)

    return predict, False


def guard_model(
    uri: str,
    *,
    returns: Any = None,
    reference: Profile | Literal["stored"] | None = "stored",
    sample: float = 1.0,
    on_invalid: Literal["report", "raise"] = "report",
    threshold: Any = None,
    name: str | None = None,
    limits: Sequence[Any] = (),
    outcomes: Any = (),
    on_missing_signature: MissingSignaturePolicy = "raise",
    consumers: Sequence[str] = (),
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    timeout: float = 30.0,
) -> Callable[[Any], Any]:
    """Load the MLflow model at *uri* and return its predict function, guarded.

    One call for serving code: the model (its scikit-learn estimator, or its
    pyfunc), its :class:`~guardrail.ModelRef` (see :func:`describe`), and the
    reference profile stored with it (:func:`load_reference`) watching its
    inputs through a :class:`~guardrail.skew.SkewMonitor`. The function takes
    one row (a mapping) or a batch (a DataFrame, a list of rows, a 2-D array
    in the signature's column order) and returns a
    :class:`~guardrail.Prediction`, or a :class:`~guardrail.Decision` when a
    *threshold* is given.

    Args:
        returns: The output's scale; ``gr.Probability`` for a classifier with
            ``predict_proba`` (its last class's column), ``gr.Score`` otherwise.
        reference: ``"stored"`` (the profile stored with the model; none
            stored is a :class:`~guardrail.errors.ReferenceNotFoundError`),
            a :class:`~guardrail.Profile` (checked against the signature), or
            None for no input monitor.
        sample, on_invalid: Passed to the ``SkewMonitor``.
        threshold, name, limits, outcomes: Passed to :func:`guardrail.guard`.
        consumers: The consumers the model declares (``ModelRef.consumers``).

    The model's files are downloaded to a temporary directory that is kept
    for the life of the process, since some flavors read them lazily.
    """
    from ._guard import guard
    from ._scales import Probability, Score
    from ._skew import SkewMonitor

    model = describe(
        uri,
        on_missing_signature=on_missing_signature,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        timeout=timeout,
    )
    if reference == "stored":
        tracking, _ = _servers(tracking_uri, registry_uri)
        profile: Profile | None = _fetch_reference(model, tracking, timeout)
    elif reference is None or isinstance(reference, Profile):
        profile = reference
        if profile is not None:
            check_reference(model, profile)
    else:
        raise ConfigError(f"reference must be 'stored', a Profile or None, got {reference!r}")
    try:
        predict, probabilities = _predictor(model)
    except GuardrailError:
        raise
    except Exception as e:
        raise _wrap(uri, "load the model", e) from e
    ref = attrs.evolve(model.ref, consumers=tuple(consumers)) if consumers else model.ref
    scale = returns if returns is not None else (Probability if probabilities else Score)
    monitor = None if profile is None else SkewMonitor(reference=profile, sample=sample,
                                                       on_invalid=on_invalid)  # fmt: skip
    decorate = guard(
        model=ref,
        returns=scale,
        threshold=threshold,
        name=name or f"mlflow:{ref.name}",
        inputs=monitor,
        limits=tuple(limits),
        outcomes=outcomes,
        features=model.features or None,
    )
    return decorate(predict)
