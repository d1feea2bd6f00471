"""Models from an MLflow registry: provenance, the reference profile stored with them, a guard.

Needs the ``mlflow`` extra (``pip install 'guardrail-sdk[mlflow]'``); without it,
importing this module raises :class:`ModuleNotFoundError` naming the extra.
``import guardrail`` never imports MLflow.

- :func:`describe` and :func:`model_ref`: the :class:`~guardrail.ModelRef`
  of ``models:/name/1``, ``models:/name@alias``, ``runs:/id/path`` or a local
  model directory, with its artifact hash (:func:`fingerprint_model`) and its
  signature's fingerprint as the feature schema;
- :func:`save_reference` and :func:`load_reference`: the training-time
  :class:`~guardrail.Profile`, stored as an artifact of the model's run and
  checked against the model's signature when read back;
- :func:`guard_model`: the model's predict function, guarded, in one call.

>>> import guardrail.mlflow as grm
>>> grm.fingerprint_model.__module__
'guardrail.mlflow'
"""

from __future__ import annotations

from ._mlflow import (
    MlflowModel,
    SignatureMissing,
    describe,
    fingerprint_model,
    guard_model,
    load_reference,
    model_ref,
    save_reference,
)
from ._public import publish

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

publish(__name__, globals(), __all__)
