"""Capture what the real `pulumi preview --diff` prints for four edits of examples/evaluation-as-data.

docs/ci.md shows a reviewer what a pull request comment will contain. Hand-written samples (or samples
from the repository's engine stand-in) drift from what the CLI really prints, so the samples are captured
from the CLI instead: this script starts a local MLflow server (sqlite, loopback), runs `pulumi up` once
on a temporary copy of the example, then, for each edit of the copy's ``evaluations.yaml``, runs
``pulumi preview --diff`` against that state and keeps its output. Each preview starts again from the
checked-in file, so a block shows exactly one edit.

Run ids, experiment ids, creation tokens, timestamps and temporary paths differ on every run; they are
replaced with stable placeholders (``placeholders``, ``mask``) so the blocks can be compared with
docs/ci.md, which is what ``tests/preview_and_state/test_preview_display.py`` does. ``--write`` puts the blocks into
docs/ci.md between its ``<!-- captured: NAME -->`` markers.

``pulumi`` runs in the example's folder (a copy of it), as the workflow runs it: the CLI, the Python language
host, the engine and its display, the state and the provider host are the real ones
(``tests/support/project.py``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "evaluation-as-data"
DOC = ROOT / "docs" / "ci.md"
PROJECT = "mlflow-evaluation-as-data"  # the example's Pulumi.yaml name, so the URNs read as in a real stack
STACK = "prod"  # the stack docs/ci.md tells readers to create
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from support.mlflow_server import start_mlflow_server  # noqa: E402
from support.project import project_folder  # noqa: E402
from support.pulumi_cli import find_cli  # noqa: E402

# name -> (text in the checked-in evaluations.yaml, its replacement): one pull request each.
EDITS: dict[str, tuple[str, str]] = {
    "tag-edit": ("tags: {reviewed_by: alice}", "tags: {reviewed_by: carol}"),
    "metric-append": ("f1: 0.921}", "f1: 0.921, precision: 0.93}"),
    "param-replace": ('params: {batch_size: "64", max_len: "128"}', 'params: {batch_size: "128", max_len: "128"}'),
    "no-change": ("# One entry", "# Reviewed in the weekly evaluation meeting.\n# One entry"),
}  # fmt: skip

NATIVE_EXAMPLE = ROOT / "examples" / "yaml-native"
# The same kinds of pull request on the YAML program that the native plugin serves.
NATIVE_EDITS: dict[str, tuple[str, str]] = {
    "tag-edit": ("reviewed_by: alice", "reviewed_by: carol"),
    "metric-append": (
        "        - key: accuracy\n          value: 0.924\n          step: 2\n",
        "        - key: accuracy\n          value: 0.924\n          step: 2\n"
        "        - key: loss\n          value: 0.35\n          step: 3\n",
    ),
    "param-replace": ('batch_size: "32"', 'batch_size: "64"'),
    "no-change": ("resources:\n", "# Reviewed in the weekly evaluation meeting.\nresources:\n"),
}

_EPOCH_MS = re.compile(r"\b1\d{12}\b")  # ms since epoch, 2001..2286
_ARTIFACT_URI = re.compile(r'((?:artifact_uri|artifactUri)\s*: )"[^"]*/(<[^>]+>)/artifacts"')
# A list of the old `run` view (`run.data.params`, `.tags`, `.metrics`), printed as deleted by a replace.
_RUN_VIEW_LIST = re.compile(r"^(\s*)- (params|tags|metrics)\s*: \[$")
_ITEM = re.compile(r"^(\s*-\s+)\[\d+\](: \{)$")


def cli_version(bin_dir: Path) -> str:
    """``pulumi version`` of the CLI in ``bin_dir``; docs/ci.md names it next to the captured blocks."""
    from pulumi import automation as auto

    return f"v{auto.PulumiCommand(root=str(bin_dir.parent), skip_version_check=True).version}"


def placeholders(resources: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{volatile value: placeholder}`` from the state: each run's id and its ``pulumi.creation_token`` tag.

    Both are random per create. Taking them from the state (rather than masking every 32-hex string)
    leaves deterministic values, such as a hash of the resource's name, as the CLI printed them; a
    placeholder also keeps saying whose value it hides.
    """
    found: dict[str, str] = {}
    for name, resource in resources.items():
        if not str(resource.get("type", "")).endswith(":ExperimentRun"):
            continue
        found[str(resource["id"])] = f"<{name} run id>"
        run = (resource.get("outputs") or {}).get("run") or {}
        for tag in (run.get("data") or {}).get("tags") or []:
            if isinstance(tag, Mapping) and tag.get("key") == "pulumi.creation_token":
                found[str(tag["value"])] = f"<{name} creation token>"
    return found


_PROVIDER_ID = re.compile(r"::[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\]")


def mask(text: str, values: Mapping[str, str], experiment_id: str) -> str:
    """Replace what differs between runs with placeholders; everything else is left as the CLI printed it.

    ``values`` is ``placeholders(...)``. Times in ms since the epoch, the server's artifact folder and the
    experiment id (a small number, so only where it is a value) are masked by pattern. Each line is also
    stripped of trailing blanks, which the CLI emits after some headers and Markdown would keep.
    """
    for value, placeholder in values.items():
        text = text.replace(value, placeholder)
    text = _EPOCH_MS.sub("<ms since epoch>", text)
    text = _ARTIFACT_URI.sub(r'\1"<artifact root>/<experiment id>/\2/artifacts"', text)
    text = re.sub(rf'((?:experiment_id|experimentId)\s*: )"{re.escape(experiment_id)}"', r'\1"<experiment id>"', text)
    text = _PROVIDER_ID.sub("::<provider id>]", text)  # the default provider's id: new with every state
    return "\n".join(_sort_run_view_lists([line.rstrip() for line in text.strip("\n").splitlines()]))


def _sort_run_view_lists(lines: list[str]) -> list[str]:
    """Sort the items of each deleted ``params``/``tags``/``metrics`` list of the ``run`` view by their text.

    Those lists are MLflow's GetRun answer, in the order the run's params and tags were logged, which is
    the order the provider host received them from the engine: a map, so it changes from one run to the
    next. Sorting them (and renumbering ``[i]``) is the one place where the captured text is reordered.
    """
    out: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        head = _RUN_VIEW_LIST.match(lines[i])
        i += 1
        if head is None:
            continue
        end = i
        closing = " " * (len(head.group(1)) + 2) + "]"
        while end < len(lines) and lines[end] != closing:
            end += 1
        items: list[list[str]] = []
        for line in lines[i:end]:
            if _ITEM.match(line) or not items:
                items.append([line])
            else:
                items[-1].append(line)
        items.sort(key=lambda item: item[1:])
        for n, item in enumerate(items):
            out.append(_ITEM.sub(rf"\g<1>[{n}]\g<2>", item[0]))
            out.extend(item[1:])
        i = end
    return out


def capture(bin_dir: Path, tracking_uri: str, work: Path) -> dict[str, str]:
    """``{block name: masked preview output}`` for ``EDITS`` of the dynamic example, then ``NATIVE_EDITS`` of
    the YAML program on the native plugin, in order, against a server already running.

    ``work`` is an empty folder owned by the caller. Each example is copied to ``work/examples/…`` beside a
    link to this checkout's ``.venv``, so a ``Pulumi.yaml`` naming ``../../.venv`` holds there as it holds
    here (and the plugin is on PATH from it), and ``pulumi`` runs in that folder as in the workflow. Each
    experiment gets a unique name so that a shared server (the test session's) never clashes; the name
    appears in no diff. The stacks are destroyed at the end so the server is left as it was found.
    """
    work.mkdir(parents=True, exist_ok=True)
    (work / ".venv").symlink_to(ROOT / ".venv")
    blocks = _capture(bin_dir, tracking_uri, work, edited=EXAMPLE / "evaluations.yaml", edits=EDITS)
    native = _capture(bin_dir, tracking_uri, work, edited=NATIVE_EXAMPLE / "Pulumi.yaml", edits=NATIVE_EDITS)
    return {**blocks, **{f"native-{name}": text for name, text in native.items()}}


def _capture(
    bin_dir: Path, tracking_uri: str, work: Path, *, edited: Path, edits: Mapping[str, tuple[str, str]]
) -> dict[str, str]:
    folder = work / edited.parent.relative_to(ROOT)
    shutil.copytree(edited.parent, folder)
    file = folder / edited.name
    checked_in = file.read_text()
    env = {"MLFLOW_TRACKING_URI": tracking_uri}
    project = project_folder(folder, bin_dir, work / "home", STACK, env, venv=work / ".venv")
    project.init({"experimentName": f"model-evaluations-capture-{uuid.uuid4().hex[:10]}"})
    blocks: dict[str, str] = {}
    try:
        project.pulumi("up", "--yes", "--skip-preview", "--color", "never")
        exported = project.exported()["deployment"].get("resources") or []
        resources = {r["urn"].rsplit("::", 1)[-1]: r for r in exported}
        values = placeholders(resources)
        experiment_id = str(resources["evaluations"]["id"])  # both examples name their experiment so
        for name, (old, new) in edits.items():
            if checked_in.count(old) != 1:
                raise ValueError(f"{name}: {old!r} is not in {edited} exactly once")
            file.write_text(checked_in.replace(old, new))
            preview = project.pulumi("preview", "--diff", "--color", "never")
            blocks[name] = mask(preview.stdout, values, experiment_id)
    finally:
        file.write_text(checked_in)
        project.remove()
    return blocks


def marker(name: str) -> tuple[str, str]:
    """The opening and closing HTML comments around a captured block in docs/ci.md (invisible when rendered)."""
    return f"<!-- captured: {name} -->", f"<!-- /captured: {name} -->"


def block_names() -> list[str]:
    """Every captured block, in the order docs/ci.md shows them."""
    return [*EDITS, *(f"native-{name}" for name in NATIVE_EDITS)]


def doc_blocks(doc: str) -> dict[str, str]:
    """The captured blocks in a docs/ci.md text, without their code fences: what the test compares."""
    found: dict[str, str] = {}
    for match in re.finditer(r"<!-- captured: ([\w-]+) -->\n```text\n(.*?)\n```\n<!-- /captured: \1 -->", doc, re.S):
        found[match.group(1)] = match.group(2)
    return found


def write_doc(doc: str, blocks: Mapping[str, str], version: str) -> str:
    """``doc`` with each block (and the CLI version) put between its markers; every marker must exist."""
    for name, text in {**blocks, "cli-version": version}.items():
        start, end = marker(name)
        body = version if name == "cli-version" else f"\n```text\n{text}\n```\n"
        found = re.search(re.escape(start) + r".*?" + re.escape(end), doc, re.S)
        if found is None:
            raise ValueError(f"docs/ci.md has no {start} ... {end} markers")
        doc = doc[: found.start()] + start + body + end + doc[found.end() :]
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="put the blocks into docs/ci.md instead of printing")
    args = parser.parse_args()
    found = find_cli()
    if found.bin_dir is None:
        sys.exit(f"No Pulumi CLI:\n{found.log}")
    with tempfile.TemporaryDirectory(prefix="capture-preview-") as tmp:
        server = start_mlflow_server(Path(tmp) / "mlflow")
        try:
            blocks = capture(found.bin_dir, server.url, Path(tmp) / "work")
        finally:
            server.stop()
    version = cli_version(found.bin_dir)
    if args.write:
        DOC.write_text(write_doc(DOC.read_text(), blocks, version))
        print(f"docs/ci.md: {len(blocks)} blocks captured with pulumi {version}")
        return
    for name, text in blocks.items():
        start, end = marker(name)
        print(f"{start}\n```text\n{text}\n```\n{end}\n")
    print(f"(pulumi {version})")


if __name__ == "__main__":
    main()
