"""Training/serving skew: profiles, their comparison, the serving monitor and its report.

>>> import guardrail as gr
>>> ref = gr.Profile.from_columns({"amount": [1.0, 2.0, 3.0, 4.0]})
>>> ref.names
('amount',)
"""

from __future__ import annotations

from ._app.report import (
    Report,
    ReportFeature,
    ReportHistogram,
    ReportMetric,
    ReportSeries,
    ReportTable,
)
from ._dask import profile_dask
from ._drift import DriftThresholds, FeatureDrift, MetricResult, SkewReport, compare
from ._fleet import FleetExporter, fleet_profile
from ._partitions import (
    PartitionProfiler,
    categorical_layout,
    numeric_layout,
    quantile_probabilities,
)
from ._profile import (
    CategoricalProfile,
    FeatureSpec,
    NumericProfile,
    Profile,
    ProfileBuilder,
    Schema,
)
from ._public import publish
from ._skew import SkewMonitor
from ._spark import profile_spark

__all__ = [
    "CategoricalProfile",
    "DriftThresholds",
    "FeatureDrift",
    "FeatureSpec",
    "FleetExporter",
    "MetricResult",
    "NumericProfile",
    "PartitionProfiler",
    "Profile",
    "ProfileBuilder",
    "Report",
    "ReportFeature",
    "ReportHistogram",
    "ReportMetric",
    "ReportSeries",
    "ReportTable",
    "Schema",
    "SkewMonitor",
    "SkewReport",
    "categorical_layout",
    "compare",
    "fleet_profile",
    "numeric_layout",
    "profile_dask",
    "profile_spark",
    "quantile_probabilities",
]

publish(__name__, globals(), __all__)
