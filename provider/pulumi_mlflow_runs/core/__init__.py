"""The rules and the MLflow client, for every front door: nothing here imports ``pulumi.dynamic``,
``pulumi.provider`` or another layer of this package.

``run_spec``, ``run_diff``, ``run_plan``, ``state`` and ``artifacts.files`` are pure (what Check and Diff
need); ``client``, ``transport``, ``auth``, ``tls``, ``retries``, ``exactly_once``, ``run_apply`` and the
artifact stores talk to a server.
"""
