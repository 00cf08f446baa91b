"""The marks of a table's runs, and the one search that finds every run of a table that a failed or killed
``up`` made.

Each run of a table is marked as an ``ExperimentRun`` is (``run_apply``: ``creating:<key>`` until its create
has written everything, then ``<key>``), with a key made of the table's key (``core.resource_key``: from the
URN, the same on both doors) and a digest of the entry key: ``<table key>.<entry digest>``. One
``LIKE '%<table key>.%'`` search per table thus finds them all, unfinished and complete, instead of one search
per run; the digest keeps the mark one word whatever the entry key holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pulumi_mlflow_runs.core.resource_key import UNFINISHED, mark_of
from pulumi_mlflow_runs.core.run_spec import RESOURCE_KEY_TAG

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core import models as m
    from pulumi_mlflow_runs.core.client import MlflowApi


def run_key(table_key: str, entry_key: str) -> str:
    """The resource key of entry ``entry_key``'s run (``resource_key.as_input`` form: one word)."""
    if not table_key or any(c.isspace() or c in "%_'\\." for c in table_key):
        raise ValueError(f"a table key is one word of letters and digits: {table_key!r}")
    return f"{table_key}.{hashlib.sha256(entry_key.encode()).hexdigest()[:32]}"


@dataclass
class Found:
    """The table's active runs by entry key, as the search found them."""

    unfinished: dict[str, list[m.Run]] = field(default_factory=dict)
    complete: dict[str, list[m.Run]] = field(default_factory=dict)
    stray: list[m.Run] = field(default_factory=list)
    """Unfinished runs of no entry of the program (its entry removed since), or of one that creates no run now
    (a replace killed mid-create, its entry since changed back): a failed create would have deleted them."""


def find_runs(
    api: MlflowApi, experiment_id: str, table_key: str, entry_keys: Iterable[str], held: Collection[str]
) -> Found:
    """The active runs of the table that ``held`` (the run ids its state holds) does not list, by entry key.
    A complete run of a key no entry has is left alone (``retainOnDelete`` kept it, say: the user's)."""
    from pulumi_mlflow_runs.core import models as m

    by_key = {run_key(table_key, key): key for key in entry_keys}
    search = m.SearchRuns(
        experiment_ids=[experiment_id],
        filter=f"tags.\"{RESOURCE_KEY_TAG}\" LIKE '%{table_key}.%'",
        run_view_type="ACTIVE_ONLY",
    )
    found = Found()
    for run in api.search_runs(search):
        mark = mark_of(run)
        unfinished = mark.startswith(UNFINISHED)
        entry = by_key.get(mark.removeprefix(UNFINISHED))
        if run.info.run_id in held:
            continue
        if entry is None:
            if unfinished:
                found.stray.append(run)
            continue
        (found.unfinished if unfinished else found.complete).setdefault(entry, []).append(run)
    return found
