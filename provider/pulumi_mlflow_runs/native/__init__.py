"""The native front door: ``pulumi-resource-mlflow-runs``, a provider plugin with a schema (package
``mlflow-runs``), for programs in every Pulumi language, previews that name what changes, and ``pulumi
import``. It serves the same core as the dynamic door: ``provider`` answers the engine's calls,
``schema`` and ``names`` carry ``core.definitions`` into the schema's camelCase, ``diff`` names the
changed paths, ``wire`` reads and writes the engine's values, ``config`` reads ``mlflow-runs:*``.
"""
