"""A small stateful fake of a Databricks workspace's MLflow API, for ``httpx.MockTransport``.

Databricks-only behaviour (the bulk endpoints, bearer auth, a workspace named by ``deployment_name``) cannot
be shown by an open-source server; this fake keeps runs with creation and deletion times and answers the
endpoints the provider and the CLI use.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

FAKE_TOKEN = "dapi" + "0123456789abcdef" * 2
FAKE_WORKSPACE = "https://dbc-1234.cloud.databricks.com"


class FakeWorkspace:
    """Runs with creation and deletion times; the bulk endpoints, search (start_time filter), get, delete."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self.clock = 100_000

    def add(self, experiment_id: str, start_time: int, *, deleted_at: int | None = None) -> str:
        run_id = uuid.uuid4().hex
        info = {"run_id": run_id, "experiment_id": experiment_id, "start_time": start_time, "status": "FINISHED",
                "lifecycle_stage": "deleted" if deleted_at is not None else "active"}  # fmt: skip
        self.runs[run_id] = {"info": info, "data": {}, "deleted_at": deleted_at}
        return run_id

    def stage(self, run_id: str) -> str:
        return str(self.runs[run_id]["info"]["lifecycle_stage"])

    def bodies(self, suffix: str) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.url.path.endswith(suffix)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("Authorization") != f"Bearer {FAKE_TOKEN}":
            return httpx.Response(401, json={"error_code": "UNAUTHENTICATED", "message": "invalid access token"})
        body = json.loads(request.content) if request.content else dict(request.url.params)
        route = request.url.path.removeprefix("/api/2.0/mlflow/")
        handler = getattr(self, "_" + route.replace("/", "_").replace("-", "_"), None)
        return handler(body) if handler else httpx.Response(404, text="no such endpoint")

    def _in(self, body: dict[str, Any], stage: str) -> list[dict[str, Any]]:
        runs = self.runs.values()
        return [r for r in runs if r["info"]["experiment_id"] == body["experiment_id"] and self.stage_of(r) == stage]

    @staticmethod
    def stage_of(run: dict[str, Any]) -> str:
        return str(run["info"]["lifecycle_stage"])

    def _databricks_runs_delete_runs(self, body: dict[str, Any]) -> httpx.Response:
        hits = [r for r in self._in(body, "active") if r["info"]["start_time"] <= body["max_timestamp_millis"]]
        for run in hits[: body.get("max_runs", 10_000)]:
            self.clock += 1
            run["info"]["lifecycle_stage"], run["deleted_at"] = "deleted", self.clock
        return httpx.Response(200, json={"runs_deleted": len(hits[: body.get("max_runs", 10_000)])})

    def _databricks_runs_restore_runs(self, body: dict[str, Any]) -> httpx.Response:
        hits = [r for r in self._in(body, "deleted") if r["deleted_at"] >= body["min_timestamp_millis"]]
        for run in hits[: body.get("max_runs", 10_000)]:
            run["info"]["lifecycle_stage"], run["deleted_at"] = "active", None
        return httpx.Response(200, json={"runs_restored": len(hits[: body.get("max_runs", 10_000)])})

    def _runs_create(self, body: dict[str, Any]) -> httpx.Response:
        run_id = self.add(body["experiment_id"], body.get("start_time", 0))
        run = self.runs[run_id]
        run["info"].update(status="RUNNING", artifact_uri=f"dbfs:/{run_id}")
        run["data"] = {"params": [], "tags": list(body.get("tags", [])), "metrics": []}
        return httpx.Response(200, json={"run": self._view(run)})

    def _runs_log_batch(self, body: dict[str, Any]) -> httpx.Response:
        data = self.runs[body["run_id"]]["data"]
        for kind in ("params", "tags", "metrics"):
            data[kind] = data.get(kind, []) + body.get(kind, [])
        return httpx.Response(200, json={})

    def _runs_update(self, body: dict[str, Any]) -> httpx.Response:
        info = self.runs[body["run_id"]]["info"]
        info.update({k: v for k, v in body.items() if k != "run_id"})
        return httpx.Response(200, json={"run_info": info})

    def _runs_get(self, body: dict[str, Any]) -> httpx.Response:
        run = self.runs.get(body["run_id"])
        if run is None:
            return httpx.Response(404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such run"})
        return httpx.Response(200, json={"run": self._view(run)})

    def _runs_delete(self, body: dict[str, Any]) -> httpx.Response:
        run = self.runs.get(body["run_id"])
        if run is None:
            return httpx.Response(404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such run"})
        self.clock += 1
        run["info"]["lifecycle_stage"], run["deleted_at"] = "deleted", self.clock
        return httpx.Response(200, json={})

    @staticmethod
    def _view(run: dict[str, Any]) -> dict[str, Any]:
        return {"info": run["info"], "data": run["data"]}

    def _runs_search(self, body: dict[str, Any]) -> httpx.Response:
        assert body["run_view_type"] == "ACTIVE_ONLY"
        limit = int(body["filter"].removeprefix("attributes.start_time <= "))
        runs = [r for r in self.runs.values() if r["info"]["experiment_id"] in body["experiment_ids"]
                and r["info"]["lifecycle_stage"] == "active" and r["info"]["start_time"] <= limit]  # fmt: skip
        runs.sort(key=lambda r: r["info"]["start_time"])
        return httpx.Response(200, json={"runs": [{"info": r["info"]} for r in runs][: body["max_results"]]})
