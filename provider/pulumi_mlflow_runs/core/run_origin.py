"""What a run made by a stack says about who manages it, in the fields MLflow's UI shows.

Without these a run page reads ``Source —`` and ``Created by —``, and the only Pulumi tags are two hashes
(``pulumi.resource_key``, ``pulumi.creation_token``) that exactly-once needs and a person cannot read. The UI's
"Source" is ``mlflow.source.name`` (after its last ``/``, so the name holds none) with the icon of
``mlflow.source.type``; "Created by" is the ``mlflow.user`` tag, else the run's ``user_id``. The create sends
them with the run (``runs/create``'s tags and ``user_id``: no request more), read from the URN each door has
at create and the ``runUser`` setting; they are no inputs, so no stack shows a diff for them.

A Databricks workspace records its own user: neither ``user_id`` nor ``mlflow.user`` is sent there.
"""

from __future__ import annotations

import functools
import getpass
from dataclasses import dataclass, replace

from pulumi_mlflow_runs.core import models as m

SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
USER_TAG = "mlflow.user"
SOURCE_TYPE = "LOCAL"
"""MLflow's source type of a program run on a machine (its UI shows a laptop and the name in full)."""
PROJECT_TAG, STACK_TAG, RESOURCE_TAG, ENTRY_TAG, NOTE_TAG = (
    "pulumi.project",
    "pulumi.stack",
    "pulumi.resource",
    "pulumi.table_entry",
    "pulumi.note",
)
ORIGIN_TAGS = (SOURCE_NAME_TAG, SOURCE_TYPE_TAG, USER_TAG, PROJECT_TAG, STACK_TAG, RESOURCE_TAG, ENTRY_TAG, NOTE_TAG)
_MAX_VALUE = 500
"""Each value at most this long (names are short; every MLflow version stores this much as sent)."""


@dataclass(frozen=True)
class RunOrigin:
    """The resource that makes a run: its project, stack and name, and for a ``RunTable`` the entry's key."""

    project: str
    stack: str
    resource: str
    entry: str | None = None

    @classmethod
    def of_urn(cls, urn: str | None) -> RunOrigin | None:
        """From the resource's URN (either door has it at create); None where there is none."""
        from pulumi_mlflow_runs.core.resource_key import split_urn

        try:
            stack, project, _, name = split_urn(urn or "")
        except ValueError:
            return None
        return cls(project, stack, name)

    def of_entry(self, key: str) -> RunOrigin:
        return replace(self, entry=key)

    def source_name(self) -> str:
        """``pulumi · quickstart · dev · train`` (``· <entry>`` for a table's run), each ``/`` made a division
        slash (U+2215): the UI shows what follows the last ``/``."""
        parts = ("pulumi", self.project, self.stack, self.resource, *((self.entry,) if self.entry is not None else ()))
        return " · ".join(parts).replace("/", "\u2215")

    def note(self) -> str:
        what = f"entry {self.entry!r} of {self.resource!r}" if self.entry is not None else repr(self.resource)
        return (
            f"Made by Pulumi: resource {what} of stack {self.stack!r} of project {self.project!r}. What the "
            "program declares here is put back by the next `pulumi up --refresh`: change the program instead."
        )


def create_fields(origin: RunOrigin | None, user: str | None) -> tuple[list[m.RunTag], str | None]:
    """The tags and the ``user_id`` a ``runs/create`` carries for ``origin`` and ``user`` (``run_user``)."""
    values: dict[str, str | None] = {USER_TAG: user}
    if origin is not None:
        values.update({
            SOURCE_NAME_TAG: origin.source_name(),
            SOURCE_TYPE_TAG: SOURCE_TYPE,
            PROJECT_TAG: origin.project,
            STACK_TAG: origin.stack,
            RESOURCE_TAG: origin.resource,
            ENTRY_TAG: origin.entry,
            NOTE_TAG: origin.note(),
        })  # fmt: skip
    tags = [m.RunTag(key=k, value=v[:_MAX_VALUE]) for k, v in values.items() if v]
    return tags, user[:_MAX_VALUE] if user else None


def run_user(configured: str | None, *, databricks: bool) -> str | None:
    """Who a run is created by: the ``runUser`` setting, else the OS user running ``pulumi``; None on
    Databricks (the workspace records the caller) or where the OS names no user."""
    if databricks:
        return None
    return configured or _os_user()


@functools.cache
def _os_user() -> str | None:
    try:
        return getpass.getuser() or None
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
        return None
