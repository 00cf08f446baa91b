"""The program functions' public module path (``from pulumi_mlflow_runs.functions import search_runs``); they
live in the dynamic front door (``dynamic.functions``), on the core's ``search``."""

from pulumi_mlflow_runs.dynamic import functions as _functions
from pulumi_mlflow_runs.dynamic.functions import *  # noqa: F403

__all__ = _functions.__all__
