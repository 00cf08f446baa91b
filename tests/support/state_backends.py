"""Pulumi's self-managed state where teams keep it: a PostgreSQL table or an S3 bucket, not a local folder.

Each backend is what ``PULUMI_BACKEND_URL`` names plus the environment the CLI needs to reach it, and a way to
read back what the CLI stored there, so a test can prove the state is in that backend and nowhere else.

- ``postgres://`` (the CLI's ``pkg/backend/diy/postgres``, since v3.176): one table (``pulumi_state`` unless the
  URL's ``table`` says another) of ``key``/``data`` rows, created at the first login; keys are the file backend's
  paths under the database's name (``<db>/.pulumi/stacks/<project>/<stack>.json``), each file's bytes base64 in
  a JSON object (``{"data": "..."}``).
- ``s3://`` (gocloud.dev's ``s3blob`` opener): ``endpoint`` (with its scheme: ``http://`` for an emulator),
  ``use_path_style`` (moto serves buckets on the path, not as host names) and ``region`` are URL options; the
  credentials come from the standard AWS environment. ``response_checksum_validation=when_required``: the
  emulator's answers carry no checksum, which the AWS SDK would otherwise warn about on every read.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from support.object_stores import S3_REGION, S3Server
from support.postgres import Postgres


class StateBackend(Protocol):
    url: str
    env: Mapping[str, str]

    def paths(self) -> list[str]:
        """Every object (row, key) the CLI stored, by its path."""
        ...

    def checkpoint(self, project: str, stack: str) -> dict[str, Any] | None:
        """The stack's current checkpoint as stored, or None when there is none."""
        ...


@dataclass
class PostgresState:
    postgres: Postgres
    database: str
    table: str = "pulumi_state"

    @property
    def url(self) -> str:
        return self.postgres.pulumi_url(self.database, self.table)

    @property
    def env(self) -> Mapping[str, str]:
        return {}

    def paths(self) -> list[str]:
        if not self.postgres.execute(self.database, "SELECT to_regclass(%s)::text", [self.table])[0][0]:
            return []  # no login yet: the CLI creates the table at the first
        return sorted(row[0] for row in self.postgres.execute(self.database, f"SELECT key FROM {self.table}"))

    def checkpoint(self, project: str, stack: str) -> dict[str, Any] | None:
        key = f"{self.database}/.pulumi/stacks/{project}/{stack}.json"
        rows = self.postgres.execute(self.database, f"SELECT data->>'data' FROM {self.table} WHERE key = %s", [key])
        return json.loads(base64.b64decode(rows[0][0])) if rows else None


@dataclass
class S3State:
    s3: S3Server
    bucket: str

    @property
    def url(self) -> str:
        options = f"endpoint={self.s3.url}&use_path_style=true&region={S3_REGION}"
        return f"s3://{self.bucket}?{options}&response_checksum_validation=when_required"

    @property
    def env(self) -> Mapping[str, str]:
        return {k: v for k, v in self.s3.env.items() if k.startswith("AWS_")}

    def paths(self) -> list[str]:
        return sorted(self.s3.objects(self.bucket))

    def checkpoint(self, project: str, stack: str) -> dict[str, Any] | None:
        found = self.s3.objects(self.bucket, f".pulumi/stacks/{project}/{stack}.json")
        data = found.get(f".pulumi/stacks/{project}/{stack}.json")
        return json.loads(data) if data is not None else None


def resources_in(checkpoint: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The checkpoint's resources by name (the last part of the URN), as the file backend's checkpoint holds them."""
    deployment = checkpoint["checkpoint"].get("latest") or {}
    return {r["urn"].rsplit("::", 1)[-1]: r for r in deployment.get("resources") or []}
