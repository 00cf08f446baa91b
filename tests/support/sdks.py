"""The generated SDKs' tools for the tests: Go and npm found or the test stops (skips, or fails under CI),
and the npm package built once per session by ``scripts/sdk-nodejs.sh``, as the release builds it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .ci import unavailable

ROOT = Path(__file__).resolve().parents[2]


def require(tool: str) -> str:
    """``tool`` on PATH; otherwise skip, or fail under CI (where every language's tests must run)."""
    found = shutil.which(tool)
    if found is None:
        unavailable(f"{tool} is not on PATH", "the SDK and language tests")
    return found


def run_step(args: list[str], cwd: Path, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    """Run a build step; its output goes into the failure when it fails."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    assert done.returncode == 0, f"$ {' '.join(args)}  (exit {done.returncode})\n{done.stdout}\n{done.stderr}"
    return done.stdout


def npm_package(out: Path) -> Path:
    """The Node.js SDK's npm package (a .tgz), built and packed into ``out``."""
    require("npm")
    return Path(run_step(["bash", str(ROOT / "scripts" / "sdk-nodejs.sh"), str(out)], ROOT).strip().splitlines()[-1])


def npm_install(folder: Path, *packages: str) -> None:
    """``npm install`` in a user's project folder, with the given packages (a .tgz path, say) added."""
    require("npm")
    run_step(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *packages], folder)
