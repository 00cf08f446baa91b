"""The plugin archives ``scripts/plugin-archive.sh`` builds, and a stand-in for the release host they go to.

The release host is GitHub's releases of the repository the schema's ``pluginDownloadURL`` names
(``github://api.github.com/<owner>/<repo>``). A test cannot reach it, so a local HTTP server serves the
archives as ``download/v<version>/<archive>``, and ``PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES`` (read by the
CLI: ``sdk/go/common/workspace/plugins.go``) sends the engine there for exactly that URL and no other: a
program or SDK that named no URL, or another one, gets no plugin, so what is exercised is the URL the SDKs
and the README carry.
"""

from __future__ import annotations

import platform
import re
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pulumi_mlflow_runs.native.schema import PLUGIN_DOWNLOAD_URL

from .once import built_once
from .sdks import ROOT

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
_LISTED = re.search(r'^PYTHONS="([^"]+)"', (ROOT / "scripts" / "plugin-archive.sh").read_text(), re.M)
assert _LISTED, "scripts/plugin-archive.sh lists its Pythons in PYTHONS"
PYTHONS = _LISTED[1].split()
"""The Python versions every archive carries wheels for."""
PLATFORMS = ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64")


def host_platform() -> str:
    """This machine as the engine names it in an archive's name (``linux-amd64``)."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return f"{platform.system().lower()}-{arch}"


def system_python_version(python: Path) -> str:
    """``X.Y`` of the Python at ``python``, or ``none`` when there is none."""
    if not python.exists():
        return "none"
    said = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return said.stdout.strip() or "none"


def build_archives(out: Path, *platforms: str) -> list[Path]:
    """``scripts/plugin-archive.sh OUT PLATFORM...``: the archives, in the order asked."""
    built = subprocess.run(
        ["bash", str(ROOT / "scripts" / "plugin-archive.sh"), str(out), *platforms],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    archives = [Path(line) for line in built.stdout.split()]
    assert [a.name for a in archives] == [f"pulumi-resource-mlflow-runs-v{VERSION}-{p}.tar.gz" for p in platforms]
    return archives


def host_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This machine's archive, built once per test run however many workers and modules ask."""
    return built_once(tmp_path_factory, "plugin-archive", lambda out: build_archives(out, host_platform())[0])


@dataclass
class ReleaseHost:
    """A local HTTP server holding the archives where a release puts them; ``env`` sends the engine to it."""

    url: str
    requested: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        # The override's URL takes the version as the engine interpolates it (${VERSION}).
        return {"PULUMI_PLUGIN_DOWNLOAD_URL_OVERRIDES": f"^{re.escape(PLUGIN_DOWNLOAD_URL)}$={self.url}/v${{VERSION}}"}


@contextmanager
def release_host(archive: Path, folder: Path) -> Iterator[ReleaseHost]:
    """``archive`` served from ``folder`` as ``download/v<version>/<name>`` on a free loopback port."""
    release = folder / "download" / f"v{VERSION}"
    release.mkdir(parents=True)
    (release / archive.name).symlink_to(archive)
    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:  # the engine's output says enough
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ReleaseHost(f"http://127.0.0.1:{server.server_address[1]}/download", requested)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
