"""What a provider process keeps while it serves: the settings it was configured with, one transport pool
(so every resource shares its connections), and the connections resolved so far. Both front doors keep
one, built when the engine configures them; nothing of it is ever pickled or written to state."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pulumi_mlflow_runs.core.retries import RetryPolicy
from pulumi_mlflow_runs.core.settings import StackConfig

if TYPE_CHECKING:  # the HTTP side is loaded on the first request, not by Configure, Check or Diff
    from collections.abc import Mapping

    import httpx

    from pulumi_mlflow_runs.core.auth import Connection
    from pulumi_mlflow_runs.core.client import MlflowApi
    from pulumi_mlflow_runs.core.transport import TransportPool


class Runtime:
    """Host-side state: stack settings, one transport pool, resolved connections."""

    def __init__(
        self,
        stack: StackConfig,
        policy: RetryPolicy | None = None,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.stack = stack
        self._policy = policy
        self._http_transport = http_transport
        self._pool: TransportPool | None = None
        self._lock = threading.Lock()
        self._connections: dict[tuple[str | None, str | None], Connection] = {}

    def api(self, host: str | None, deployment_name: str | None) -> MlflowApi:
        from pulumi_mlflow_runs.core.auth import resolve_connection
        from pulumi_mlflow_runs.core.client import MlflowApi
        from pulumi_mlflow_runs.core.transport import TransportPool

        key = (host, deployment_name)
        with self._lock:
            if self._pool is None:
                self._pool = TransportPool(policy=self._policy, http_transport=self._http_transport)
            conn = self._connections.get(key)
            if conn is None:
                conn = resolve_connection(host=host, deployment_name=deployment_name, stack=self.stack)
                conn = replace(conn, object_stores=self.stack.object_stores, run_user=self.stack.run_user)
                self._connections[key] = conn
            pool = self._pool
        return MlflowApi(pool.get(conn))

    def cached_connection(self, props: Mapping[str, Any]) -> Connection | None:
        """The connection ``api`` resolved for these inputs, if it did (never resolves one)."""
        with self._lock:
            return self._connections.get((props.get("host"), props.get("deployment_name")))
