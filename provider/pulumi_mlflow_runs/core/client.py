"""Typed MLflow REST client: one method per endpoint, every path in one table."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
from pydantic import BaseModel

from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.transport import Transport


class _Endpoint(NamedTuple):
    method: str
    path: str
    idempotent: bool
    """False where repeating the request could write twice (new run, appended metric points)."""


_RUNS = "/api/2.0/mlflow/runs"
_EXPERIMENTS = "/api/2.0/mlflow/experiments"
_BULK = "/api/2.0/mlflow/databricks/runs"
_DBX_ARTIFACTS = "/api/2.0/mlflow/artifacts"

ENDPOINTS: dict[str, _Endpoint] = {
    "runs.get": _Endpoint("GET", f"{_RUNS}/get", True),
    "runs.create": _Endpoint("POST", f"{_RUNS}/create", False),
    "runs.update": _Endpoint("POST", f"{_RUNS}/update", True),
    "runs.delete": _Endpoint("POST", f"{_RUNS}/delete", True),
    "runs.restore": _Endpoint("POST", f"{_RUNS}/restore", True),
    "runs.log_batch": _Endpoint("POST", f"{_RUNS}/log-batch", False),
    "runs.log_metric": _Endpoint("POST", f"{_RUNS}/log-metric", False),
    "runs.log_param": _Endpoint("POST", f"{_RUNS}/log-parameter", True),
    "runs.set_tag": _Endpoint("POST", f"{_RUNS}/set-tag", True),
    "runs.delete_tag": _Endpoint("POST", f"{_RUNS}/delete-tag", True),
    "runs.log_inputs": _Endpoint("POST", f"{_RUNS}/log-inputs", True),
    "runs.log_outputs": _Endpoint("POST", f"{_RUNS}/outputs", False),
    "runs.log_model": _Endpoint("POST", f"{_RUNS}/log-model", True),
    "runs.search": _Endpoint("POST", f"{_RUNS}/search", True),
    "metrics.get_history": _Endpoint("GET", "/api/2.0/mlflow/metrics/get-history", True),
    # bulk: with max_runs, a repeat after a lost answer would act on the next batch of runs
    "runs.delete_bulk": _Endpoint("POST", f"{_BULK}/delete-runs", False),
    "runs.restore_bulk": _Endpoint("POST", f"{_BULK}/restore-runs", False),
    # a repeat after a lost answer finds the name taken: sent once, reconciled by name (experiment.py)
    "experiments.create": _Endpoint("POST", f"{_EXPERIMENTS}/create", False),
    "experiments.get": _Endpoint("GET", f"{_EXPERIMENTS}/get", True),
    "experiments.get_by_name": _Endpoint("GET", f"{_EXPERIMENTS}/get-by-name", True),
    "experiments.update": _Endpoint("POST", f"{_EXPERIMENTS}/update", True),
    "experiments.delete": _Endpoint("POST", f"{_EXPERIMENTS}/delete", True),
    "experiments.restore": _Endpoint("POST", f"{_EXPERIMENTS}/restore", True),
    "experiments.set_tag": _Endpoint("POST", f"{_EXPERIMENTS}/set-experiment-tag", True),
    "experiments.delete_tag": _Endpoint("POST", f"{_EXPERIMENTS}/delete-experiment-tag", True),
    # Databricks: signed URLs for writing run artifacts (no write itself: asking again is harmless)
    "artifacts.credentials_for_write": _Endpoint("POST", f"{_DBX_ARTIFACTS}/credentials-for-write", True),
    "artifacts.list": _Endpoint("GET", f"{_DBX_ARTIFACTS}/list", True),
}


_VERSIONS: dict[str, str | None] = {}
"""``GET /version`` of each server this host has asked, by base URL (None: the server did not say)."""
_VERSIONS_LOCK = threading.Lock()
_VERSION = re.compile(r"\d+\.\d+[0-9A-Za-z.+-]*")


def wire_body(req: BaseModel) -> dict[str, Any]:
    """A request model as it goes on the wire (JSON types, no null fields, MLflow's names)."""
    return req.model_dump(mode="json", exclude_none=True, by_alias=True)


class MlflowApi:
    """The runs and experiments APIs of one server."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _call(self, name: str, req: BaseModel | None = None, **query: Any) -> dict[str, Any]:
        ep = ENDPOINTS[name]
        if ep.method == "GET":
            return self.transport.call("GET", ep.path, params=query, idempotent=True)
        return self.transport.call(
            ep.method, ep.path, body=wire_body(req) if req is not None else {}, idempotent=ep.idempotent
        )

    def server_version(self) -> str | None:
        """The server's MLflow version (``GET /version``, plain text), asked once per server; None if it
        gives none (a proxy's page, a server without ``/version``)."""
        base = self.transport.connection.base_url
        with _VERSIONS_LOCK:
            if base in _VERSIONS:
                return _VERSIONS[base]
        try:
            resp = self.transport._client.get("/version", auth=self.transport.connection.auth)
        except httpx.HTTPError:
            return None  # not remembered: the next caller asks again
        text = resp.text.strip() if resp.status_code == 200 else ""
        with _VERSIONS_LOCK:
            return _VERSIONS.setdefault(base, text if _VERSION.fullmatch(text) else None)

    # ---- runs ------------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> m.Run:
        return m.GetRunResponse.model_validate(self._call("runs.get", run_id=run_id)).run

    def create_run(self, req: m.CreateRun) -> m.Run:
        return m.GetRunResponse.model_validate(self._call("runs.create", req)).run

    def update_run(self, req: m.UpdateRun) -> None:
        self._call("runs.update", req)

    def delete_run(self, run_id: str) -> None:
        self._call("runs.delete", m.RunRef(run_id=run_id))

    def restore_run(self, run_id: str) -> None:
        self._call("runs.restore", m.RunRef(run_id=run_id))

    def log_batch(self, req: m.LogBatch) -> None:
        self._call("runs.log_batch", req)

    def log_batch_body(self, body: dict[str, Any]) -> None:
        """``runs/log-batch`` of a body already in wire form (``wire_body``'s): a metrics file's rows are read in
        that form, and validating and dumping a model per batch of a thousand points took about 40% of the CPU
        of a create of 20,000 rows."""
        ep = ENDPOINTS["runs.log_batch"]
        self.transport.call(ep.method, ep.path, body=body, idempotent=ep.idempotent)

    def log_metric(self, req: m.LogMetric) -> None:
        self._call("runs.log_metric", req)

    def log_param(self, req: m.LogParam) -> None:
        self._call("runs.log_param", req)

    def set_tag(self, req: m.SetTag) -> None:
        self._call("runs.set_tag", req)

    def delete_tag(self, req: m.DeleteTag) -> None:
        self._call("runs.delete_tag", req)

    def log_inputs(self, req: m.LogInputs) -> None:
        self._call("runs.log_inputs", req)

    def log_outputs(self, req: m.LogOutputs) -> None:
        self._call("runs.log_outputs", req)

    def log_model(self, req: m.LogModel) -> None:
        self._call("runs.log_model", req)

    def search_runs_page(self, req: m.SearchRuns) -> m.SearchRunsResponse:
        return m.SearchRunsResponse.model_validate(self._call("runs.search", req))

    def search_runs(self, req: m.SearchRuns, *, page_size: int = 1000) -> Iterator[m.Run]:
        """Every matching run, following page tokens until ``max_results`` runs (if set) are seen."""
        limit = req.max_results
        seen = 0
        page = req.model_copy()
        while True:
            page.max_results = page_size if limit is None else min(limit - seen, page_size)
            resp = self.search_runs_page(page)
            for run in resp.runs:
                yield run
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if not resp.next_page_token or not resp.runs:
                return
            page.page_token = resp.next_page_token

    def get_metric_history(self, run_id: str, key: str) -> list[m.Metric]:
        """Every point of one metric, across pages (used to find what an uncertain write did)."""
        points: list[m.Metric] = []
        token: str | None = None
        while True:
            query: dict[str, Any] = {"run_id": run_id, "metric_key": key, "max_results": 25000}
            if token:
                query["page_token"] = token
            page = m.MetricHistoryResponse.model_validate(self._call("metrics.get_history", **query))
            points += page.metrics
            token = page.next_page_token
            if not token:
                return points

    def delete_runs_bulk(self, req: m.DeleteRuns) -> int:
        return m.DeleteRunsResponse.model_validate(self._call("runs.delete_bulk", req)).runs_deleted

    def restore_runs_bulk(self, req: m.RestoreRuns) -> int:
        return m.RestoreRunsResponse.model_validate(self._call("runs.restore_bulk", req)).runs_restored

    # ---- artifacts (Databricks) ---------------------------------------------------------------------
    def credentials_for_write(self, run_id: str, paths: list[str]) -> list[dict[str, Any]]:
        """Databricks' ``credential_infos`` for writing ``paths`` (relative to the run's artifact root):
        ``{run_id, path, signed_uri, type, headers: [{name, value}]}`` each, across pages."""
        infos: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            req = m.CredentialsForWrite(run_id=run_id, path=paths, page_token=token)
            page = self._call("artifacts.credentials_for_write", req)
            found = page.get("credential_infos") or []
            infos += [info for info in found if isinstance(info, dict)]
            token = page.get("next_page_token")
            if not token or not found:
                return infos

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[dict[str, Any]]:
        """The run's artifact listing under ``path`` (one level: ``{path, is_dir, file_size}``), across pages."""
        files: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query: dict[str, Any] = {"run_id": run_id}
            if path:
                query["path"] = path
            if token:
                query["page_token"] = token
            page = self._call("artifacts.list", **query)
            found = page.get("files") or []
            files += [f for f in found if isinstance(f, dict)]
            token = page.get("next_page_token")
            if not token or not found:
                return files

    # ---- experiments -------------------------------------------------------------------------------
    def create_experiment(self, req: m.CreateExperiment) -> str:
        return str(self._call("experiments.create", req)["experiment_id"])

    def get_experiment(self, experiment_id: str) -> m.Experiment:
        data = self._call("experiments.get", experiment_id=experiment_id)
        return m.GetExperimentResponse.model_validate(data).experiment

    def get_experiment_by_name(self, name: str) -> m.Experiment:
        data = self._call("experiments.get_by_name", experiment_name=name)
        return m.GetExperimentResponse.model_validate(data).experiment

    def update_experiment(self, req: m.UpdateExperiment) -> None:
        self._call("experiments.update", req)

    def delete_experiment(self, experiment_id: str) -> None:
        self._call("experiments.delete", m.ExperimentRef(experiment_id=experiment_id))

    def restore_experiment(self, experiment_id: str) -> None:
        self._call("experiments.restore", m.ExperimentRef(experiment_id=experiment_id))

    def set_experiment_tag(self, req: m.SetExperimentTag) -> None:
        self._call("experiments.set_tag", req)

    def delete_experiment_tag(self, req: m.DeleteExperimentTag) -> None:
        self._call("experiments.delete_tag", req)
