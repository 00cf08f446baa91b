"""The three ways of creating the same run: the provider through the real host, raw httpx, MlflowClient."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from bench_common import (
    RUNS,
    DynamicHost,
    compact,
    create_request,
    from_struct,
    minimal_batches,
    now_ms,
    rpc_call,
    stamped,
)

_JSON = {"Content-Type": "application/json"}


class RawSequence:
    """The minimal request sequence: runs/create, log-batch (fewest chunks), runs/update, and, ``read_back``,
    runs/get (the run as created, which the provider's outputs hold; the provider reads it only where a server may
    have stored something otherwise than sent)."""

    def __init__(self, url: str, *, read_back: bool = True) -> None:
        self.client = httpx.Client(base_url=url, timeout=120.0)
        self.read_back = read_back

    def _post(self, path: str, body: Any) -> dict[str, Any]:
        resp = self.client.post(f"{RUNS}/{path}", content=compact(body), headers=_JSON)
        resp.raise_for_status()
        data = resp.json()
        assert isinstance(data, dict)
        return data

    def create(self, decl: Mapping[str, Any]) -> str:
        started = now_ms()
        run = self._post(
            "create", {"experiment_id": decl["experiment_id"], "run_name": decl["run_name"], "start_time": started}
        )["run"]
        run_id = str(run["info"]["run_id"])
        for body in minimal_batches(run_id, decl["params"], decl["tags"], stamped(decl["metrics"], started)):
            self._post("log-batch", body)
        self._post("update", {"run_id": run_id, "status": decl["status"], "end_time": now_ms()})
        if self.read_back:
            resp = self.client.get(f"{RUNS}/get", params={"run_id": run_id})
            resp.raise_for_status()
            assert resp.json()["run"]["info"]["status"] == decl["status"]
        return run_id

    def append(self, run_id: str, points: list[dict[str, Any]]) -> None:
        self._post("log-batch", {"run_id": run_id, "metrics": stamped(points, now_ms())})
        self.client.get(f"{RUNS}/get", params={"run_id": run_id}).raise_for_status()

    def close(self) -> None:
        self.client.close()


class ClientSequence:
    """``MlflowClient`` doing the same: create_run, log_batch (it chunks itself), set_terminated, get_run."""

    def __init__(self, url: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=url)

    def create(self, decl: Mapping[str, Any]) -> str:
        from mlflow.entities import Metric, Param, RunTag

        started = now_ms()
        run = self.client.create_run(decl["experiment_id"], start_time=started, run_name=decl["run_name"])
        run_id = run.info.run_id
        self.client.log_batch(
            run_id,
            metrics=[Metric(p["key"], p["value"], started, p["step"]) for p in decl["metrics"]],
            params=[Param(k, v) for k, v in decl["params"].items()],
            tags=[RunTag(k, v) for k, v in decl["tags"].items()],
        )
        self.client.set_terminated(run_id, decl["status"])
        assert self.client.get_run(run_id).info.status == decl["status"]
        return run_id

    def close(self) -> None:
        pass


class HostCreate:
    """The provider's Create as the engine sends it: one CreateRequest (built beforehand) over gRPC."""

    def __init__(self, host: DynamicHost, checked: Any) -> None:
        self.host = host
        self.request = create_request(host, checked)

    def create(self, _decl: Mapping[str, Any] | None = None) -> str:
        resp = rpc_call(self.host, "Create", self.request)
        assert resp.id
        self.last_response = resp
        return str(resp.id)

    def outputs(self) -> dict[str, Any]:
        return from_struct(self.last_response.properties)
