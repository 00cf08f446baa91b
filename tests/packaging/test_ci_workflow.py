"""What ``.github/workflows/ci.yml`` runs and when: the fast tier and lint on every push, the whole ``.ci/run``
on pull requests and on pushes to main, with the tools ``.ci/run`` builds the CLI with; and that the tiers the
scripts name leave no test out."""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from support.sdks import ROOT
from support.server_profile import NOT_ON_POSTGRES, ON_POSTGRES

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
CI_RUN = ROOT / ".ci" / "run"
TEST_SH = ROOT / "scripts" / "test.sh"


def _workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _runs(job: dict[str, Any]) -> list[str]:
    return [str(step["run"]) for step in job["steps"] if "run" in step]


def _uses(job: dict[str, Any], action: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith(f"{action}@")]
    return dict(step.get("with", {}))


def test_every_push_and_pull_request_triggers_it() -> None:
    on = _workflow()[True]  # YAML 1.1 reads the key `on` as True
    assert set(on) == {"push", "pull_request"}
    assert not on["push"] and not on["pull_request"], "no branch or path filter: every push"


def test_the_fast_tier_and_lint_run_on_every_push() -> None:
    job = _workflow()["jobs"]["fast"]
    assert "if" not in job, "on every push and pull request"
    assert _runs(job) == ["bash scripts/test.sh --fast"]
    assert _uses(job, "actions/setup-python")["python-version"] == "3.11"
    script = TEST_SH.read_text()
    for command in ("ruff check provider tests examples benchmarks scripts", "ruff format --check provider", "mypy"):
        assert f"\n{command}\n" in script, f"scripts/test.sh does not run {command!r}"
    assert '-m "not cli and not slow"' in script


def test_the_whole_check_runs_on_pull_requests_and_on_main() -> None:
    job = _workflow()["jobs"]["whole"]
    condition = job["if"]
    assert "github.event_name == 'pull_request'" in condition and "github.ref == 'refs/heads/main'" in condition
    assert _runs(job) == ["bash .ci/run"]
    assert job["timeout-minutes"] >= 60, "room above the 30 minutes .ci/run takes"
    # What .ci/run builds the CLI and the language hosts with, and runs the language tests on.
    assert _uses(job, "actions/setup-python")["python-version"] == "3.11"
    assert int(_uses(job, "actions/setup-node")["node-version"]) >= 20
    wanted = re.search(r"^go (\d+\.\d+)", (ROOT / "tools" / "pulumi-cli" / "go.mod").read_text(), re.M)
    assert wanted is not None and _uses(job, "actions/setup-go")["go-version"] == wanted.group(1)


def test_no_secret_is_used() -> None:
    assert "secrets." not in WORKFLOW.read_text()
    assert _workflow()["permissions"] == {"contents": "read"}


def _pytest_selections(script: str) -> list[str]:
    """The ``-m`` expression of each pytest command in ``.ci/run`` (``on_mlflow2`` and ``on_postgres`` run pytest
    too)."""
    selections = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] in ("pytest", "on_mlflow2", "on_postgres"):
            assert "-m" in words, f"a pytest run in .ci/run without a tier: {line}"
            selections.append(words[words.index("-m") + 1])
    return selections


def test_ci_runs_the_whole_suite_on_workers_then_the_mlflow2_tests_on_mlflow2_and_postgres() -> None:
    script = CI_RUN.read_text()
    assert _pytest_selections(script) == ["not cli", "mlflow2 and not cli", "cli", "mlflow2 and cli", "postgres"]
    assert "by_file=(-n 2 --dist loadfile " in script and "by_test=(-n 2 --dist loadgroup " in script
    assert "by_cli=(-n 3 --dist loadgroup " in script, "the CLI tests (waiting on processes) three at a time"
    assert script.count('"${by_file[@]}"') == 2 and script.count('"${by_test[@]}"') == 1, "two workers but the CLI's"
    assert script.count('"${by_cli[@]}"') == 2, "every run on workers"
    assert 'MLFLOW_SERVER_PYTHON="$mlflow2_python"' in script
    assert "on_postgres() { MLFLOW_SERVER_PROFILE=postgres " in script
    # The one file the first run leaves out (before the MLflow 2.x venv is ready) runs with the mlflow2 tests.
    assert re.findall(r"--ignore=(\S+)", script) == ["tests/connection/test_mlflow2_server.py"]
    marks = (ROOT / "tests" / "connection" / "test_mlflow2_server.py").read_text()
    assert "pytestmark = [pytest.mark.slow, pytest.mark.mlflow2]" in marks
    assert "set -euo pipefail" in script, "a failing (or empty: exit code 5) pytest run fails CI"
    assert "|| true" not in script and "set +e" not in script
    assert "export CI=true" in script


def test_every_test_the_postgres_stage_names_is_there() -> None:
    """A renamed or moved test would drop out of the PostgreSQL stage without a word: each name must be found."""
    for entry in (*ON_POSTGRES, *NOT_ON_POSTGRES):
        path, _, name = entry.partition("::")
        assert (ROOT / path).is_file(), entry
        assert not name or f"def {name.split('[')[0]}" in (ROOT / path).read_text(), entry  # a name or its start
