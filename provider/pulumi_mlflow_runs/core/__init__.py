"""The rules and the MLflow client, for every front door: nothing here imports ``pulumi.dynamic``,
``pulumi.provider`` or another layer of this package.

It speaks in its own terms: snake_case properties declared once in ``definitions``, a run handed back as
``run_plan.outputs_for`` gives it (every logged point as a point), messages that name each setting by the
key the calling door passes in (``settings.ConfigKeys``); each door keeps the run in its own state form
(``state`` holds the codecs of both).

``definitions``, ``run_spec``, ``change_rules``, ``run_diff``, ``run_plan``, ``state``, ``resource_key``,
``settings``, ``messages`` and ``artifacts.files`` are pure (what Check and Diff need); ``client``,
``transport``, ``auth``, ``tls``, ``retries``, ``exactly_once``, ``run_apply``, ``run_lifecycle``,
``experiment``, ``search`` and the artifact stores talk to a server.
"""
