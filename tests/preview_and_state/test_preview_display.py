"""docs/ci.md shows what the real ``pulumi preview --diff`` prints for the evaluation-as-data edits.

The blocks in docs/ci.md are captured from the CLI by ``scripts/capture_preview.py``. This test captures
them again with the CLI at hand and compares, so the doc cannot drift from the CLI's display, nor from
the provider's diff rules (a rule change that turns an update into a replace changes the block). The
checks on each block's content hold whatever the doc says, so a ``--write`` cannot bless a wrong display.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "capture_preview.py"
REGENERATE = ".venv/bin/python scripts/capture_preview.py --write"


@pytest.fixture(scope="module")
def capture() -> ModuleType:
    """The capture script as a module: scripts/ is not a package, so it is loaded from its path."""
    spec = importlib.util.spec_from_file_location("capture_preview", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_docs_ci_md_blocks_are_what_the_cli_prints(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, capture: ModuleType
) -> None:
    doc = capture.DOC.read_text()
    documented = capture.doc_blocks(doc)
    assert list(documented) == capture.block_names(), "docs/ci.md needs one captured block per edit, in order"

    printed = capture.capture(pulumi_bin, mlflow_env, tmp_path)

    # What a reviewer must be able to read, whatever docs/ci.md says.
    assert '~ reviewed_by: "alice" => "carol"' in printed["tag-edit"]
    assert re.search(r"~ 1 to update\n    3 unchanged$", printed["tag-edit"])
    assert re.search(r'\+ \[2\]: \{\n\s+\+ key  : "precision"', printed["metric-append"])
    assert re.search(r"~ 1 to update\n    3 unchanged$", printed["metric-append"])
    assert '~ batch_size: "64" => "128"' in printed["param-replace"]
    assert "ExperimentRun::distilbert-sst2]" in printed["param-replace"]
    assert re.search(r"\+-1 to replace\n    3 unchanged$", printed["param-replace"])
    assert printed["no-change"].endswith("Resources:\n    4 unchanged")
    # The native plugin's detailed diff: only what changes, by path.
    assert '~ reviewed_by: "alice" => "carol"' in printed["native-tag-edit"]
    append = printed["native-metric-append"]
    assert re.search(r'~ metrics: \[\n\s+\+ \[4\]: \{\n\s+\+ key  : "loss"', append), append
    assert "[0]" not in append and "params" not in append and "datasetInputs" not in append, append
    assert re.search(r"\+-mlflow-runs:index:ExperimentRun: \(replace\)", printed["native-param-replace"])
    assert '~ batch_size: "32" => "64"' in printed["native-param-replace"]
    assert printed["native-no-change"].endswith("Resources:\n    3 unchanged")
    for name, text in printed.items():  # nothing volatile left unmasked
        assert not re.search(r"\[id=[0-9a-f]|\b1\d{12}\b|/tmp/|creation_token\"\n.*\"[0-9a-f]{32}\"", text), name

    version = capture.cli_version(pulumi_bin)
    documented_version = re.search(r"<!-- captured: cli-version -->(.*?)<!--", doc)
    for name, text in printed.items():
        assert documented[name] == text, (
            f"docs/ci.md's {name!r} block is not what pulumi {version} prints now (the doc names "
            f"{documented_version and documented_version.group(1)}); run `{REGENERATE}` and review the "
            f"change. The CLI printed:\n{text}"
        )


def test_the_resource_key_the_doc_shows_is_the_core_key(capture: ModuleType) -> None:
    """An update's preview on the dynamic door lists ``resource_key``, the input its program computes: the
    core's key of the run's URN (``core.resource_key``), then the key earlier versions sent, on one line."""
    from pulumi_mlflow_runs.core import resource_key as rk

    block = capture.doc_blocks(capture.DOC.read_text())["metric-append"]
    urn = re.findall(r"\[urn=(urn:pulumi:[^\]]+:ExperimentRun::[^\]]+)\]", block)
    shown = re.findall(r'^ +resource_key +: "(.*)"$', block, re.MULTILINE)
    assert len(urn) == len(shown) == 1, block
    stack, project, _, name = rk.split_urn(urn[0])
    assert shown == [rk.as_input(rk.of_urn(urn[0]), [rk.legacy_dynamic_key(project, stack, "", name)])]


def test_mask_uses_stable_placeholders_and_sorts_the_run_view(capture: ModuleType) -> None:
    """Masking is what makes two captures comparable; a placeholder keeps saying whose value it hides."""
    run_id, token, stable = "8491b606e01f4e09aefd9159329db3c2", "5a31f19b26414545aba43e503e20ce23", "ab" * 16
    resources = {
        "evaluations": {"type": "pulumi-python:dynamic/mlflow:Experiment", "id": "7"},
        "distilbert-sst2": {
            "type": "pulumi-python:dynamic/mlflow:ExperimentRun",
            "id": run_id,
            "outputs": {"run": {"data": {"tags": [{"key": "pulumi.creation_token", "value": token}]}}},
        },
    }
    values = capture.placeholders(resources)
    assert values == {run_id: "<distilbert-sst2 run id>", token: "<distilbert-sst2 creation token>"}
    raw = (
        f"    [id={run_id}]   \n"
        f'      - artifact_uri   : "/tmp/x/mlflow/artifacts/7/{run_id}/artifacts"\n'
        '        experiment_id  : "7"\n'
        "                  - timestamp: 1795713763879\n"
        "              - params : [\n"
        "              -     [0]: {\n"
        '                      - key  : "model"\n'
        "                    }\n"
        "              -     [1]: {\n"
        '                      - key  : "batch_size"\n'
        "                    }\n"
        "                ]\n"
        f'                      - value: "{token}"\n'
        f'        resource_key   : "{stable}"\n'
    )
    assert capture.mask(raw, values, "7").splitlines() == [
        "    [id=<distilbert-sst2 run id>]",
        '      - artifact_uri   : "<artifact root>/<experiment id>/<distilbert-sst2 run id>/artifacts"',
        '        experiment_id  : "<experiment id>"',
        "                  - timestamp: <ms since epoch>",
        "              - params : [",
        "              -     [0]: {",
        '                      - key  : "batch_size"',
        "                    }",
        "              -     [1]: {",
        '                      - key  : "model"',
        "                    }",
        "                ]",
        '                      - value: "<distilbert-sst2 creation token>"',
        f'        resource_key   : "{stable}"',
    ]
