"""The package's layers hold: the core imports no front door, no module imports itself back, and the
providers pickled into existing stacks' state under the old module paths still load."""

from __future__ import annotations

import ast
import base64
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import dill

import pulumi_mlflow_runs
from pulumi_mlflow_runs.dynamic.experiment import ExperimentProvider
from pulumi_mlflow_runs.dynamic.experiment_run import ExperimentRunProvider

PACKAGE = Path(pulumi_mlflow_runs.__file__).parent
HOSTS = ("pulumi.dynamic", "pulumi.provider", "pulumi.runtime.proto", "grpc")
"""What a front door is served by: the dynamic provider host, the provider protocol."""
DOORS = ("pulumi_mlflow_runs.dynamic", "pulumi_mlflow_runs.native", "pulumi_mlflow_runs.cli")
"""Every front door of the package: the dynamic provider, the plugin, the command-line tool."""
FRONT_DOORS = (*HOSTS, *DOORS)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, at the top or inside a function (lazy imports count)."""
    package = _module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_the_core_imports_no_front_door() -> None:
    core = {name: path for name, path in _modules().items() if name.startswith("pulumi_mlflow_runs.core")}
    assert len(core) > 10, sorted(core)
    found = {
        name: sorted(i for i in _imports(path) if i.startswith(FRONT_DOORS))
        for name, path in core.items()
    }  # fmt: skip
    assert {name: doors for name, doors in found.items() if doors} == {}, found


def test_each_front_door_imports_no_other() -> None:
    """The doors stand apart over the core: what they share is the core's, so a change to one cannot break
    the other (the plugin reads the dynamic door's state through ``core.state``, not through ``dynamic``)."""
    modules = _modules()
    for door in DOORS:
        others = tuple(d for d in DOORS if d != door)
        inside = {name: path for name, path in modules.items() if name == door or name.startswith(door + ".")}
        assert inside, door
        found = {name: sorted(i for i in _imports(path) if i.startswith(others)) for name, path in inside.items()}
        assert {name: doors for name, doors in found.items() if doors} == {}, (door, found)


_LAYER_NAME = re.compile(r"``((?:core|dynamic|native)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)``")
"""A docstring's or comment's reference to a module of a layer, or to a name in one: ``core.state.with_columns``."""


def _exists(dotted: str) -> bool:
    parts = f"{PACKAGE.name}.{dotted}".split(".")
    for end in range(len(parts), 1, -1):  # the longest prefix that is a module, then attributes from there
        try:
            found: object = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for attr in parts[end:]:
            if not hasattr(found, attr):
                return False
            found = getattr(found, attr)
        return True
    return False


def test_comments_name_modules_and_names_that_exist() -> None:
    """Where a docstring or comment sends the reader to ``core.x``, ``dynamic.x`` or ``native.x`` (or a name
    in one), it is there (issue 26: comments named modules that no longer existed)."""
    named = {(path.name, m.group(1)) for path in PACKAGE.rglob("*.py") for m in _LAYER_NAME.finditer(path.read_text())}
    assert len(named) > 20, sorted(named)
    assert sorted((where, name) for where, name in named if not _exists(name)) == []


def test_no_import_cycle_between_modules() -> None:
    modules = _modules()
    graph = {
        name: {i for i in _imports(path) if i in modules and i != name and not i.endswith("__init__")}
        for name, path in modules.items()
    }
    # a package's __init__ re-exporting its children is not a cycle: only module-to-module edges count
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    graph = {name: deps - packages for name, deps in graph.items() if name not in packages}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*trail[trail.index(dep) :], dep] if dep in trail else [node, dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == [], cycles


# Pickled by the dynamic providers of the layout before core/ and dynamic/ (commit 079875c), as the SDK
# writes them into every resource's state (``__provider``).
_OLD_PICKLES = {
    ExperimentRunProvider: "gASVRQAAAAAAAACMIXB1bHVtaV9tbGZsb3dfcnVucy5leHBlcmltZW50X3J1bpSMFUV4cGVyaW1lbnRSdW5Qcm92"
    "aWRlcpSTlCmBlH2UYi4=",
    ExperimentProvider: "gASVPgAAAAAAAACMHXB1bHVtaV9tbGZsb3dfcnVucy5leHBlcmltZW50lIwSRXhwZXJpbWVudFByb3ZpZGVylJOU"
    "KYGUfZRiLg==",
}


def test_providers_pickled_under_the_old_paths_still_load() -> None:
    for cls, blob in _OLD_PICKLES.items():
        raw = base64.b64decode(blob)
        assert cls.__name__.encode() in raw and b"pulumi_mlflow_runs.experiment" in raw
        provider = dill.loads(raw)  # what the SDK's provider host does with ``__provider``
        assert type(provider) is cls
