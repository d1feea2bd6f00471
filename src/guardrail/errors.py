"""Every exception guardrail raises, in one tree.

Each derives from :class:`GuardrailError` and from the builtin that describes
it best, so callers can catch either::

    GuardrailError
    ├── ScaleError (TypeError)              values on different scales were mixed
    ├── OutOfScaleError (ValueError)        a number is off its declared scale
    │   └── PredictionOutOfScaleError       ... returned by a guarded predict function
    ├── ModelMismatchError (ValueError)     a threshold or profile set for another model
    ├── UndeclaredConsumerError (PermissionError)
    ├── ConfigError (ValueError)            a configuration value is invalid
    ├── FormatError (ValueError)            a document or file is malformed
    │   ├── ProfileFormatError
    │   └── MissingDependencyError          a file kind needs an optional package
    ├── ProfileMismatchError (ValueError)   profiles of different layouts
    ├── LabelError (ValueError)             an outcome label is not 0 or 1
    ├── SinkClosedError (ValueError)        a decision sink was closed
    ├── SinkFullError                       a decision sink's buffer is full
    ├── CallStageError (RuntimeError)       a mechanism broke the call contract
    ├── MetricsQueryError (OSError)         a metrics backend did not answer
    ├── RegistryError (RuntimeError)        a model registry (MLflow) failed
    │   ├── RegistryUnreachableError (ConnectionError)   it did not answer in time
    │   ├── ModelNotFoundError (LookupError)             no model at that URI
    │   └── ReferenceNotFoundError (LookupError)         no reference profile stored with it
    ├── MissingSignatureError (ValueError)  a registered model has no input signature
    ├── SignatureMismatchError (ValueError) a profile's features are not the model's inputs
    └── PolicyError                         a policy the user chose stopped the call
        ├── PredictionOutOfScaleError       on_out_of_scale="raise"
        ├── SchemaViolationError (ValueError)   on_invalid="raise"
        └── ActionLimitExceededError        on_exceed="raise"

A guard lets a :class:`PolicyError` propagate into the caller; every other
failure of its machinery is counted and reported instead, and never changes
the prediction.

>>> import guardrail as gr
>>> from guardrail.errors import ScaleError
>>> try:
...     gr.LogOdds(1.2) + gr.Probability(0.3)
... except ScaleError as e:
...     isinstance(e, TypeError)
True
"""

from __future__ import annotations

from ._errors import (
    ActionLimitExceededError,
    CallStageError,
    ConfigError,
    FormatError,
    GuardrailError,
    LabelError,
    MetricsQueryError,
    MissingDependencyError,
    MissingSignatureError,
    ModelMismatchError,
    ModelNotFoundError,
    OutOfScaleError,
    PolicyError,
    PredictionOutOfScaleError,
    ProfileFormatError,
    ProfileMismatchError,
    ReferenceNotFoundError,
    RegistryError,
    RegistryUnreachableError,
    ScaleError,
    SchemaViolationError,
    SignatureMismatchError,
    SinkClosedError,
    SinkFullError,
    UndeclaredConsumerError,
)
from ._public import publish

__all__ = [
    "ActionLimitExceededError",
    "CallStageError",
    "ConfigError",
    "FormatError",
    "GuardrailError",
    "LabelError",
    "MetricsQueryError",
    "MissingDependencyError",
    "MissingSignatureError",
    "ModelMismatchError",
    "ModelNotFoundError",
    "OutOfScaleError",
    "PolicyError",
    "PredictionOutOfScaleError",
    "ProfileFormatError",
    "ProfileMismatchError",
    "ReferenceNotFoundError",
    "RegistryError",
    "RegistryUnreachableError",
    "ScaleError",
    "SchemaViolationError",
    "SignatureMismatchError",
    "SinkClosedError",
    "SinkFullError",
    "UndeclaredConsumerError",
]

publish(__name__, globals(), __all__)
