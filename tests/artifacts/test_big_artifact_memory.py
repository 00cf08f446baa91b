"""A big artifact does not raise the provider host's memory: measured on the real host process (peak RSS).

The file goes through the whole path a `pulumi up` takes: Check hashes it, Create uploads it to the
tracking server's proxied artifact store (``mlflow-artifacts:``), and the server keeps all of it. The
measure is the host's ``VmHWM`` (its peak resident set since it started) before and after, which sees
every allocation of the process, the SDK's and httpx's included.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pulumi
import pytest

from support.host import DynamicHost, peak_rss
from support.runs import create_run, unique

pytestmark = pytest.mark.slow  # 300 MB through the host

FILE_BYTES = 300 << 20
ALLOWED_GROWTH = 100 << 20


def test_a_300_mb_artifact_raises_the_hosts_peak_memory_by_under_100_mb(
    host: DynamicHost, mlflow_client: Any, tmp_path: Path
) -> None:
    name = unique("artifacts-memory")
    experiment_id = str(mlflow_client.create_experiment(name, artifact_location=f"mlflow-artifacts:/{name}"))
    # Warm up: the first create imports the HTTP side and opens the pool; that is not the file's cost.
    create_run(host, experiment_id=experiment_id, artifacts={"small.txt": pulumi.StringAsset("warm")})

    big = tmp_path / "big.bin"
    block = hashlib.sha256(b"artifact").digest() * (1 << 15)  # 1 MiB that is not all zeros
    want = hashlib.sha256()
    with big.open("wb") as f:
        for _ in range(FILE_BYTES // len(block)):
            f.write(block)
            want.update(block)
    before = peak_rss(host.process.pid)
    declared = {"model/big.bin": pulumi.FileAsset(str(big))}
    run_id, outs, _ = create_run(host, experiment_id=experiment_id, artifacts=declared)
    after = peak_rss(host.process.pid)

    stored = outs["artifact_files"]["model/big.bin"]
    assert int(stored["size"]) == FILE_BYTES
    assert stored["sha256"] == want.hexdigest()
    listed = {f.path: f.file_size for f in mlflow_client.list_artifacts(run_id, "model")}
    assert listed == {"model/big.bin": FILE_BYTES}, "the server holds every byte"
    growth = after - before
    assert growth < ALLOWED_GROWTH, f"the host's peak RSS grew by {growth >> 20} MiB for a {FILE_BYTES >> 20} MiB file"
