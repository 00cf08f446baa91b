"""A ``RunTable``'s inputs: Check's rules and their normal form, pure (no request, no HTTP import).

A table is an experiment, the connection, and ``runs``: a map from a key the user chooses to an entry that
holds what an ``ExperimentRun`` takes besides the experiment and the connection. Each entry is checked by
``run_spec.check_inputs`` exactly as that run would be on its own (``run_inputs`` makes its inputs), so the
rules cannot drift apart; a failure names ``runs["<key>"].<property>``. Run names may repeat across entries,
as MLflow allows: the entry key, not the name, tells the runs apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

from pulumi_mlflow_runs.core.definitions import METRICS_FILE_SUMMARY
from pulumi_mlflow_runs.core.run_spec import INPUT_KEYS, OUTPUT_KEYS, check_inputs, is_unknown, summary_to_reuse

TABLE_RUN_KEYS = ("experiment_id", "host", "deployment_name")
"""Inputs of every run that the table gives once: a change of one replaces the whole table."""
ENTRY_KEYS = (*(k for k in INPUT_KEYS if k not in TABLE_RUN_KEYS), "adopt_run_id")
"""What an entry may hold: every other ``ExperimentRun`` input, and ``adopt_run_id``."""
TABLE_KEYS = (*TABLE_RUN_KEYS, "runs", "runs_file", "max_parallel")
MAX_PARALLEL_DEFAULT = 4
"""Requests in flight for a table's writes when the program names none: what a one-worker server keeps up with."""
MAX_PARALLEL_LIMIT = 32


def entry_path(key: str, prop: str = "") -> str:
    """``runs["bert-sst2"]``, or ``runs["bert-sst2"].tags.team`` for a property of that entry."""
    head = f"runs[{json.dumps(key)}]"
    return f"{head}.{prop}" if prop else head


def run_inputs(table: Mapping[str, Any], key: str, entry: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``ExperimentRun`` inputs of entry ``key``: its own, the table's experiment and connection, and the
    key as the run's name where the entry names none."""
    inputs = dict(table["runs"][key] if entry is None else entry)
    if inputs.get("run_name") is None:
        inputs["run_name"] = key
    for name in TABLE_RUN_KEYS:
        if table.get(name) is not None:
            inputs[name] = table[name]
    return inputs


def max_parallel(table: Mapping[str, Any]) -> int:
    value = table.get("max_parallel")
    return MAX_PARALLEL_DEFAULT if value is None else int(value)


def summaries_to_reuse(
    olds: Mapping[str, Any], news: Mapping[str, Any], same_file: Callable[[Any, Any], bool] | None = None
) -> dict[str, Any]:
    """Per entry key, the metrics file's summary an earlier Check gave where it still holds, as
    ``run_spec.summary_to_reuse`` says for a run: ``same_file(old asset, new asset)`` is the door's word that the
    file is unchanged (the plugin's engine hash; an entry it says no for is read again); without it, the file's
    bytes are hashed against the summary."""
    new_runs = news.get("runs")
    if not isinstance(new_runs, Mapping) or not any(
        isinstance(entry, Mapping) and entry.get("metrics_file") is not None for entry in new_runs.values()
    ):
        return {}  # no file to reuse a summary of: the old entries are not read
    old_runs = olds.get("runs")
    if not isinstance(old_runs, Mapping):
        return {}
    found: dict[str, Any] = {}
    for key, new in new_runs.items():
        old = old_runs.get(key)
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            continue
        if same_file is not None and not same_file(old.get("metrics_file"), new.get("metrics_file")):
            continue
        summary = summary_to_reuse(old, new, engine_unchanged=same_file is not None)
        if summary is not None:
            found[key] = summary
    return found


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)  # the engine sends every number as a float
    return value if isinstance(value, int) else None


def _check_entry(
    table: Mapping[str, Any], key: Any, entry: Any, failures: list[tuple[str, str]], *, read_files: bool,
    reuse: Mapping[str, Any], name: Callable[[str], str], source: str,
) -> dict[str, Any] | None:  # fmt: skip
    if not isinstance(key, str) or not key:
        failures.append(("runs", f"an entry's key must be a non-empty string, got {key!r}"))
        return None
    if is_unknown(entry):
        return entry  # type: ignore[no-any-return]  # a preview: the engine checks again at `up`
    if not isinstance(entry, Mapping):
        failures.append((entry_path(key), "must be an object of ExperimentRun inputs"))
        return None
    before = len(failures)
    for field in sorted(set(entry) - {*ENTRY_KEYS, METRICS_FILE_SUMMARY.name}):
        if field in TABLE_RUN_KEYS:
            failures.append(
                (entry_path(key, name(field)), "is the table's: set it on the RunTable, once for every run")
            )
        else:
            known = ", ".join(map(name, ENTRY_KEYS))
            failures.append((entry_path(key, name(field)), f"is not an input of a run (inputs: {known}){source}"))
    given = {k: v for k, v in entry.items() if k in (*ENTRY_KEYS, METRICS_FILE_SUMMARY.name)}
    inputs, found = check_inputs(
        run_inputs(table, key, given), OUTPUT_KEYS, read_files=read_files, reuse_summary=reuse.get(key)
    )
    failures += [(entry_path(key, name(prop)), reason + source) for prop, reason in found if prop not in TABLE_RUN_KEYS]
    if len(failures) > before:
        return None
    for table_key in TABLE_RUN_KEYS:
        inputs.pop(table_key, None)
    if entry.get("run_name") is None:
        inputs.pop("run_name", None)  # the key stands for it (``run_inputs``); the state keeps it once
    return inputs


def check_table(
    news: Mapping[str, Any],
    outputs: Collection[str] = (),
    *,
    read_files: bool = False,
    reuse_summaries: Mapping[str, Any] | None = None,
    name: Callable[[str], str] = str,
    file_keys: Collection[str] = (),
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Validate and normalize a table's inputs: ``(inputs, failures)``, as ``run_spec.check_inputs`` for a run.

    ``outputs``: the door's output names (a program may send them as None). ``read_files`` and
    ``reuse_summaries`` (a metrics file's summary per entry key) are Check's, as for a run. ``name``: an
    entry's property path as the door names it (the plugin's camelCase). ``file_keys``: the entries Check read
    from ``runs_file`` (``core.table_file``), whose failures say so.
    """
    failures: list[tuple[str, str]] = []
    for unknown in sorted(set(news) - set(TABLE_KEYS) - set(outputs) - {"__provider"}):
        failures.append((unknown, f"is not an input of RunTable (inputs: {', '.join(TABLE_KEYS)})"))
    given = {k: v for k, v in news.items() if k in TABLE_KEYS and v is not None}
    out: dict[str, Any] = dict(given)
    # The experiment and the connection by a run's own rules, failures under the table's names.
    server, found = check_inputs({k: v for k, v in given.items() if k in TABLE_RUN_KEYS})
    failures += found
    out.update({k: server[k] for k in TABLE_RUN_KEYS if k in server})
    parallel = given.get("max_parallel")
    if parallel is not None and not is_unknown(parallel):
        number = _whole_number(parallel)
        if number is None or not 1 <= number <= MAX_PARALLEL_LIMIT:
            failures.append(
                ("max_parallel", f"must be a whole number between 1 and {MAX_PARALLEL_LIMIT}, got {parallel!r}")
            )
        else:
            out["max_parallel"] = number
    runs = given.get("runs")
    if runs is None and given.get("runs_file") is None:
        failures.append(
            ("runs", "is required (a map from a key you choose to a run's inputs; {} for none), or runsFile")
        )
    elif runs is not None and not is_unknown(runs):
        if not isinstance(runs, Mapping):
            failures.append(("runs", "must be a map from a key you choose to a run's inputs"))
        else:
            entries: dict[str, Any] = {}
            for key, entry in runs.items():
                source = f" (an entry of the runs file {_path(given.get('runs_file'))})" if key in file_keys else ""
                checked = _check_entry(
                    out, key, entry, failures, read_files=read_files, reuse=reuse_summaries or {}, name=name,
                    source=source,
                )  # fmt: skip
                entries[key] = checked if checked is not None else entry
            out["runs"] = entries
    return out, failures


def _path(asset: Any) -> str:
    return str(getattr(asset, "path", "") or "")
