"""Pydantic models of the MLflow REST payloads (requests and responses).

Metric values may be NaN or ±Infinity. JSON has no token for them, so on the wire (and in Pulumi state)
they are the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, as MLflow's protobuf JSON does.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

_NONFINITE_DECODE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def decode_float(value: Any) -> Any:
    """``"NaN"``/``"Infinity"``/``"-Infinity"`` to floats; anything else unchanged."""
    if isinstance(value, str) and value in _NONFINITE_DECODE:
        return _NONFINITE_DECODE[value]
    return value


def encode_float(value: float) -> float | str:
    """Floats to JSON-safe values: non-finite ones become MLflow's strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


MetricValue = Annotated[
    float,
    BeforeValidator(decode_float),
    PlainSerializer(encode_float, return_type=Any, when_used="json"),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# ---- entities ---------------------------------------------------------------------------------------


class Metric(_Model):
    key: str
    value: MetricValue
    timestamp: int
    step: int = 0
    dataset_name: str | None = None
    dataset_digest: str | None = None
    model_id: str | None = None
    run_id: str | None = None


class Param(_Model):
    key: str
    value: str = ""


class RunTag(_Model):
    key: str
    value: str = ""


class InputTag(_Model):
    key: str
    value: str = ""


class Dataset(_Model):
    name: str
    digest: str
    source_type: str
    source: str
    schema_: str | None = Field(default=None, alias="schema")
    profile: str | None = None


class DatasetInput(_Model):
    dataset: Dataset
    tags: list[InputTag] = Field(default_factory=list)


class ModelInput(_Model):
    model_id: str


class ModelOutput(_Model):
    model_id: str
    step: int


class RunInfo(_Model):
    run_id: str
    experiment_id: str
    run_name: str | None = None
    user_id: str | None = None
    status: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    artifact_uri: str | None = None
    lifecycle_stage: str | None = None


class RunData(_Model):
    metrics: list[Metric] = Field(default_factory=list)
    params: list[Param] = Field(default_factory=list)
    tags: list[RunTag] = Field(default_factory=list)


class RunInputs(_Model):
    dataset_inputs: list[DatasetInput] = Field(default_factory=list)
    model_inputs: list[ModelInput] = Field(default_factory=list)


class RunOutputs(_Model):
    model_outputs: list[ModelOutput] = Field(default_factory=list)


class Run(_Model):
    info: RunInfo
    data: RunData = Field(default_factory=RunData)
    inputs: RunInputs = Field(default_factory=RunInputs)
    outputs: RunOutputs = Field(default_factory=RunOutputs)


class ExperimentTag(_Model):
    key: str
    value: str = ""


class Experiment(_Model):
    experiment_id: str
    name: str
    artifact_location: str | None = None
    lifecycle_stage: str | None = None
    tags: list[ExperimentTag] = Field(default_factory=list)


# ---- requests -----------------------------------------------------------------------------------------


class RunRef(_Model):
    run_id: str


class ExperimentRef(_Model):
    experiment_id: str


class CredentialsForWrite(_Model):
    """Databricks ``GetCredentialsForWrite``: signed URLs for paths relative to the run's artifact root."""

    run_id: str
    path: list[str]
    page_token: str | None = None


class CreateRun(_Model):
    experiment_id: str
    user_id: str | None = None
    run_name: str | None = None
    start_time: int | None = None
    tags: list[RunTag] | None = None


class UpdateRun(_Model):
    run_id: str
    run_name: str | None = None
    status: str | None = None
    end_time: int | None = None


class LogBatch(_Model):
    run_id: str
    metrics: list[Metric] | None = None
    params: list[Param] | None = None
    tags: list[RunTag] | None = None


class LogMetric(Metric):
    run_id: str


class LogParam(_Model):
    run_id: str
    key: str
    value: str


class SetTag(_Model):
    run_id: str
    key: str
    value: str


class DeleteTag(_Model):
    run_id: str
    key: str


class LogInputs(_Model):
    run_id: str
    datasets: list[DatasetInput] | None = None
    models: list[ModelInput] | None = None


class LogOutputs(_Model):
    run_id: str
    models: list[ModelOutput]


class LogModel(_Model):
    run_id: str
    model_json: str


class SearchRuns(_Model):
    experiment_ids: list[str]
    filter: str | None = None
    run_view_type: str | None = None
    max_results: int | None = None
    order_by: list[str] | None = None
    page_token: str | None = None


class DeleteRuns(_Model):
    experiment_id: str
    max_timestamp_millis: int
    max_runs: int | None = None


class RestoreRuns(_Model):
    experiment_id: str
    min_timestamp_millis: int
    max_runs: int | None = None


class CreateExperiment(_Model):
    name: str
    artifact_location: str | None = None
    tags: list[ExperimentTag] | None = None


class UpdateExperiment(_Model):
    experiment_id: str
    new_name: str


class SetExperimentTag(_Model):
    experiment_id: str
    key: str
    value: str


class DeleteExperimentTag(_Model):
    experiment_id: str
    key: str


# ---- responses ----------------------------------------------------------------------------------------


class GetRunResponse(_Model):
    run: Run


class SearchRunsResponse(_Model):
    runs: list[Run] = Field(default_factory=list)
    next_page_token: str | None = None


class MetricHistoryResponse(_Model):
    metrics: list[Metric] = Field(default_factory=list)
    next_page_token: str | None = None


class DeleteRunsResponse(_Model):
    runs_deleted: int = 0


class RestoreRunsResponse(_Model):
    runs_restored: int = 0


class GetExperimentResponse(_Model):
    experiment: Experiment
