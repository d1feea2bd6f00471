"""The exceptions guardrail raises; :mod:`guardrail.errors` draws their tree.

Every exception derives from :class:`GuardrailError` and from the builtin that
describes it best (``TypeError`` for a scale mix-up, ``ValueError`` for a bad
value), so callers can catch either.
"""

from __future__ import annotations


class GuardrailError(Exception):
    """Base class of every exception raised by guardrail."""


class ScaleError(GuardrailError, TypeError):
    """Values on different scales were mixed, or a value is not on any scale.

    Example: ``LogOdds(1.0) + Probability(0.3)``.
    """


class OutOfScaleError(GuardrailError, ValueError):
    """A number does not belong to the scale it was declared on.

    Example: ``Probability(1.7)`` or ``Probability(float("nan"))``.
    """


class ModelMismatchError(GuardrailError, ValueError):
    """A prediction was compared with a threshold set for another model.

    Also raised when a reference profile stored with a model was recorded for
    another model (its artifact hash differs).
    """


class UndeclaredConsumerError(GuardrailError, PermissionError):
    """A prediction was consumed by a consumer its model did not declare.

    Raised only when the policy is ``"raise"``; see :func:`guardrail.configure`.
    """


class ConfigError(GuardrailError, ValueError):
    """A configuration value is invalid."""


class FormatError(GuardrailError, ValueError):
    """A serialized form (a dict or JSON document) is malformed or unknown."""


class PolicyError(GuardrailError):
    """Raised by a policy the user chose, such as ``on_exceed="raise"``.

    A guard lets these propagate into the caller; every other failure of its
    machinery is counted and reported instead.
    """


class PredictionOutOfScaleError(OutOfScaleError, PolicyError):
    """A predict function returned a value off its declared scale.

    Raised by a guard with ``on_out_of_scale="raise"`` (the default).
    """


class ProfileFormatError(FormatError):
    """A serialized profile is malformed, inconsistent or of an unknown version."""


class ProfileMismatchError(GuardrailError, ValueError):
    """Two profiles do not share features, bins and categories, so cannot be combined.

    Build serving profiles with ``reference.builder()`` (or ``like=reference``)
    so that they share the reference's layout.
    """


class SchemaViolationError(PolicyError, ValueError):
    """An input did not match the reference schema, and the policy is ``"raise"``.

    Attributes:
        feature: The first offending feature.
        problem: One of ``"missing"``, ``"unexpected"``, ``"type"``,
            ``"nan_inf"``, ``"out_of_range"``.
        violations: Every ``(feature, problem)`` pair found in the input.
    """

    def __init__(self, violations: tuple[tuple[str, str], ...]) -> None:
        self.violations = violations
        self.feature, self.problem = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(f"input violates the schema: {self.feature}: {self.problem}{more}")


class ActionLimitExceededError(PolicyError):
    """An action went past its :class:`~guardrail.ActionLimit` (``on_exceed="raise"``).

    Attributes:
        limit: The limit's name.
        key: The key the action was counted under (``None`` for an unkeyed limit).
        paused: The limit was paused (its kill switch), not full.
        degraded: The decision was made by a failure policy, not by the store.
    """

    def __init__(
        self, limit: str, key: str | None, *, paused: bool = False, degraded: bool = False
    ) -> None:
        why = "is paused" if paused else "exceeded"
        how = " (failure policy: the store could not answer)" if degraded else ""
        super().__init__(f"action limit {limit!r} {why}{how}")
        self.limit = limit
        self.key = key
        self.paused = paused
        self.degraded = degraded


class LabelError(GuardrailError, ValueError):
    """An outcome label is not 0, 1, ``True`` or ``False``."""


class SinkClosedError(GuardrailError, ValueError):
    """A record was written to a decision sink after it was closed.

    Sinks raise it from ``write``; the decision log counts and reports it.
    """


class SinkFullError(GuardrailError):
    """A decision sink's buffer is full and the record was not kept.

    Sinks raise it from ``write``; the decision log counts and reports it.
    """


class CallStageError(GuardrailError, RuntimeError):
    """A mechanism tried to set a call's action outside the deciding steps.

    Only the decider and the assigner set the action; after them it can only
    be vetoed. The guard reports this as its machinery failing.
    """


class MissingDependencyError(FormatError):
    """Reading this kind of file needs an optional package that is not installed."""


class MetricsQueryError(GuardrailError, OSError):
    """A metrics backend (Prometheus) did not answer a query, or answered with an error."""


class RegistryError(GuardrailError, RuntimeError):
    """A model registry (MLflow) failed; the message names the model URI.

    Raw MLflow exceptions never escape :mod:`guardrail.mlflow`: each is
    wrapped in this error or one of its subclasses, the original chained as
    ``__cause__``.
    """


class RegistryUnreachableError(RegistryError, ConnectionError):
    """The tracking server or registry did not answer within the time-out."""


class ModelNotFoundError(RegistryError, LookupError):
    """No model at this URI: an unknown name, version, alias, run or path."""


class ReferenceNotFoundError(RegistryError, LookupError):
    """No reference profile was stored with this model (see ``save_reference``)."""


class MissingSignatureError(GuardrailError, ValueError):
    """A model was logged without an input signature, so its inputs are unchecked.

    Raised by :mod:`guardrail.mlflow` when ``on_missing_signature="raise"``
    (the default); log the model with ``signature=infer_signature(X, y)``.
    """


class SignatureMismatchError(GuardrailError, ValueError):
    """A reference profile's features are not the model's signature inputs.

    ``missing`` are inputs of the signature the profile lacks, ``unexpected``
    features of the profile the signature lacks, ``wrong_kind`` features whose
    kind (numeric or categorical) differs from the signature's type.
    """

    def __init__(
        self,
        message: str,
        *,
        missing: tuple[str, ...] = (),
        unexpected: tuple[str, ...] = (),
        wrong_kind: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.wrong_kind = wrong_kind
