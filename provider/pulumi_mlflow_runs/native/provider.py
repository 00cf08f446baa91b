"""The plugin's side of the provider protocol: every call the engine makes, served from the same core as the
dynamic door.

Served on the protocol's own stubs (``provider_pb2_grpc``) rather than ``pulumi.provider.experimental``:
the engine's requests carry what this provider needs and that layer does not pass on (Diff's and
Update's old inputs, which name what a user changed, and Read's stored inputs for a refresh), and the
handshake and ``Attach`` (``PULUMI_DEBUG_PROVIDERS``) are served here too.

This module is the protocol only: it decodes a request into the core's names (secrets unwrapped and noted),
picks the resource's handler once (``native.run``, ``native.experiment``; functions in ``native.functions``),
and encodes what the handler returns, previews and partial failures included. Secrets are accepted as
secrets: an output is marked secret where the input it repeats is (each handler's ``secret_outputs``), and
the schema marks the credentials. Check failures name properties in the schema's names and never quote a
value; any other failure is one message with a ``fix:`` line (``core.messages``, naming the plugin's config
keys), never a traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from pulumi_mlflow_runs.core import definitions as d
from pulumi_mlflow_runs.core.artifacts.files import Elided
from pulumi_mlflow_runs.core.change_rules import canonical
from pulumi_mlflow_runs.core.errors import ConfigurationError, InputError, MlflowRunsError
from pulumi_mlflow_runs.core.messages import describe, resource_of
from pulumi_mlflow_runs.core.retries import RetryPolicy
from pulumi_mlflow_runs.core.run_spec import CHECKED_FROM, CHECKED_KEYS, NOT_ECHOED_KEYS
from pulumi_mlflow_runs.core.runtime import Runtime
from pulumi_mlflow_runs.core.settings import StackConfig
from pulumi_mlflow_runs.native import schema, wire
from pulumi_mlflow_runs.native.config import PLUGIN_KEYS, read_config
from pulumi_mlflow_runs.native.engine_log import EngineLog
from pulumi_mlflow_runs.native.experiment import ExperimentHandler
from pulumi_mlflow_runs.native.functions import FUNCTIONS
from pulumi_mlflow_runs.native.handler import KEPT, Handler, Session
from pulumi_mlflow_runs.native.names import camel_path, convert
from pulumi_mlflow_runs.native.run import RunHandler
from pulumi_mlflow_runs.native.state import MOVED_FROM_DYNAMIC
from pulumi_mlflow_runs.native.status import partial_failure
from pulumi_mlflow_runs.native.table import TableHandler
from pulumi_mlflow_runs.version import VERSION

R = TypeVar("R")

HANDLERS: dict[str, Handler] = {h.token: h for h in (RunHandler(), ExperimentHandler(), TableHandler())}
"""One handler per resource type (``native.handler``); the protocol below picks one per request."""
_SOME, _NONE = provider_pb2.DiffResponse.DIFF_SOME, provider_pb2.DiffResponse.DIFF_NONE


def _type_of(urn: str, type_: str) -> str:
    return type_ or (urn.split("::")[-2] if urn.count("::") >= 3 else "")


def _handler(request: Any, context: grpc.ServicerContext) -> Handler:
    kind = _type_of(request.urn, request.type)
    handler = HANDLERS.get(kind)
    if handler is None:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown resource type {kind!r}")
        raise AssertionError  # abort raises; never reached
    return handler


def _snake(struct: struct_pb2.Struct | None, props: tuple[d.Prop, ...]) -> tuple[dict[str, Any], set[str]]:
    """A request's properties in the core's names, and which of them (snake_case) held a secret."""
    values, secret = wire.decode(struct)
    values.pop(MOVED_FROM_DYNAMIC, None)
    renamed = convert(values, props, to_snake=True)
    names = {p.camel: p.name for p in props}
    return renamed, {names.get(k, k) for k in secret}


class _OldInputs(Mapping[str, Any]):
    """Check's old inputs, a top-level property decoded when it is read: a table's Check mostly needs none of its
    thousand entries."""

    def __init__(self, struct: struct_pb2.Struct, props: tuple[d.Prop, ...]) -> None:
        self._struct, self._props = struct, props
        self._names = {d.camel(p.name): p.name for p in props}
        self._read: dict[str, Any] = {}

    def _wire(self, name: str) -> str | None:
        wire_name = d.camel(name)
        fields = self._struct.fields
        if wire_name == MOVED_FROM_DYNAMIC or wire_name not in fields or fields[wire_name].HasField("null_value"):
            return None
        return wire_name

    def __getitem__(self, name: str) -> Any:
        wire_name = self._wire(name)
        if wire_name is None:
            raise KeyError(name)
        if name not in self._read:
            one = struct_pb2.Struct()
            one.fields[wire_name].CopyFrom(self._struct.fields[wire_name])
            self._read[name] = _snake(one, self._props)[0][name]
        return self._read[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._wire(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (self._names.get(k, k) for k in self._struct.fields if self._wire(self._names.get(k, k)) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _wire_bytes(struct: struct_pb2.Struct) -> bytes:
    return struct.SerializeToString(deterministic=True)


def _camel(values: Mapping[str, Any], props: tuple[d.Prop, ...], secret: set[str]) -> struct_pb2.Struct:
    out = convert(values, props, to_snake=False)
    return wire.encode(out, {d.camel(k) for k in secret})


def _read_inputs(
    inputs: Mapping[str, Any], stored: struct_pb2.Struct, props: tuple[d.Prop, ...], secret: set[str]
) -> struct_pb2.Struct:
    """Refreshed inputs for the engine; an input that is a whole asset the engine sent without its contents (a
    table's ``runsFile``) is handed back as stored."""
    elided = {k for k, v in inputs.items() if isinstance(v, Elided)}
    out = _camel({k: v for k, v in inputs.items() if k not in elided}, props, secret)
    for name in elided:
        out.fields[d.camel(name)].CopyFrom(stored.fields[d.camel(name)])
    return out


_STABLE = {"runId", "artifactUri", "userId", "experimentId"}
"""Outputs an update never changes: a preview keeps them known, so dependents preview as they will be."""


def _previewed(
    news: struct_pb2.Struct, olds: struct_pb2.Struct | Mapping[str, Any], handler: Handler
) -> struct_pb2.Struct:
    """The outputs of a create or update in preview: the new inputs, each computed output unknown but those an
    update keeps. Nothing is sent to the server."""
    out = struct_pb2.Struct()
    out.CopyFrom(news)
    for key in map(d.camel, (*NOT_ECHOED_KEYS, *CHECKED_KEYS)):  # as in real outputs (an SDK cannot read an empty
        # asset back, and what Check added is no output)
        if key in out.fields:
            del out.fields[key]
    old_fields = olds.fields if isinstance(olds, struct_pb2.Struct) else {}
    for prop in handler.computed:
        name = prop.camel
        kept = next((k for k in (name, prop.name) if k in old_fields), None)  # prop.name: moved from dynamic
        if name in _STABLE and kept is not None:
            out.fields[name].CopyFrom(old_fields[kept])
        else:
            out[name] = wire.UNKNOWN
    return out


def _detailed(
    paths: Mapping[str, Any], old_inputs: Mapping[str, Any], news: Mapping[str, Any], props: tuple[d.Prop, ...]
) -> dict[str, Any]:
    """The engine's form of ``paths``. A path whose property the program changed is shown old input against
    new input; one the program did not change (drift that a refresh found, a run deleted outside Pulumi) is
    shown against the state, which is where the difference is."""
    names = {p.camel: p.name for p in props}
    edited: dict[str, bool] = {}  # per property, not per path: a table's thousand paths share ``runs``
    out = {}
    for path, kind in paths.items():
        top = names.get(path.split(".", 1)[0].split("[", 1)[0], "")
        if top not in edited:
            edited[top] = top in news and canonical(old_inputs.get(top)) != canonical(news.get(top))
        out[path] = provider_pb2.PropertyDiff(kind=kind, inputDiff=edited[top])
    return out


def _unchanged(request: Any, rewrite: bool = False) -> Any:
    """No change, unless the state is the dynamic door's, or one a failed step left (``rewrite``): then an
    update that reads the run, sends what it lacks (nothing, for a moved one), and writes the state in the
    plugin's form (``runId``, not ``run_id``)."""
    if rewrite or MOVED_FROM_DYNAMIC in request.olds.fields:
        return provider_pb2.DiffResponse(changes=_SOME, hasDetailedDiff=True)
    return provider_pb2.DiffResponse(changes=_NONE, hasDetailedDiff=True)


def _user_facing(action: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Our own errors as one message with a fix line (``core.messages``), a resource left part-made reported
    as a partial failure; any other exception is a bug, and reaches the engine as gRPC reports it."""

    def wrap(method: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(method)
        def call(self: Provider, request: Any, context: grpc.ServicerContext) -> R:
            try:
                return method(self, request, context)
            except MlflowRunsError as exc:
                props = getattr(request, "properties", None) or getattr(request, "news", None)
                connection = self.connection_of(props)
                text = describe(
                    exc, action=action, resource=resource_of(request), connection=connection, keys=PLUGIN_KEYS
                )
                left = exc.left_behind
                if left is not None and action in ("create", "update"):
                    handler = _handler(request, context)
                    _, secret = _snake(props, handler.props)
                    state = _camel(handler.partial_state(left), handler.props, handler.secret_outputs(secret))
                    context.abort_with_status(partial_failure(text, str(left["run_id"]), state))
                context.abort(grpc.StatusCode.UNKNOWN, text)
                raise  # abort raises; never reached

        return call

    return wrap


class Provider(provider_pb2_grpc.ResourceProviderServicer):
    """``mlflow-runs``: ``ExperimentRun`` and ``Experiment``, the ``getRun`` / ``searchRuns`` invokes."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        """The stop of this engine session's retries (``RetryPolicy.stop``): set by ``Cancel`` and ``stop``."""
        self._stopping = False
        self._runtime = Runtime(StackConfig(keys=PLUGIN_KEYS), RetryPolicy(stop=self._cancelled))
        self._lock = threading.Lock()
        self.log = EngineLog()

    # ---- plugin and configuration ------------------------------------------------------------------------

    def Handshake(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.log.address = request.engine_address or None
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=True, accept_resources=True)

    def Attach(self, request: plugin_pb2.PluginAttach, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self.log.address = request.address  # PULUMI_DEBUG_PROVIDERS: the engine attaches to a running plugin
        return empty_pb2.Empty()

    def GetPluginInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> plugin_pb2.PluginInfo:
        return plugin_pb2.PluginInfo(version=VERSION)

    def GetSchema(self, request: Any, context: grpc.ServicerContext) -> Any:
        return provider_pb2.GetSchemaResponse(schema=schema.schema_json())

    def CheckConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        args, _ = wire.decode(request.news)
        failures = []
        try:
            read_config(args)
        except (ConfigurationError, InputError) as exc:
            failures.append(provider_pb2.CheckFailure(property="", reason=str(exc)))
        return provider_pb2.CheckResponse(inputs=request.news, failures=failures)

    def DiffConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        old, _ = wire.decode(request.old_inputs if request.old_inputs.fields else request.olds)
        new, _ = wire.decode(request.news)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return provider_pb2.DiffResponse(changes=_SOME if changed else _NONE, diffs=changed)

    @_user_facing("configure")
    def Configure(self, request: Any, context: grpc.ServicerContext) -> Any:
        args, _ = wire.decode(request.args)
        if not args:  # an older engine sends only `variables`: `mlflow-runs:config:trackingUri` = value
            args = {key.rsplit(":", 1)[-1]: value for key, value in request.variables.items()}
        stack, policy = read_config(args)
        with self._lock:
            # A new session (an attached plugin serves one command after another) retries again, unless the
            # plugin itself is stopping.
            self._cancelled = threading.Event()
            if self._stopping:
                self._cancelled.set()
            self._runtime = Runtime(stack, dataclasses.replace(policy, stop=self._cancelled))
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def _session(self, urn: str) -> Session:
        return Session(say=lambda line: self.log.info(urn, line), stop=self._cancelled, urn=urn)

    def api(self, props: Mapping[str, Any]) -> Any:
        return self._runtime.api(props.get("host"), props.get("deployment_name"))

    def connection_of(self, struct: struct_pb2.Struct | None) -> Any:
        try:
            values, _ = wire.decode(struct)
        except Exception:  # noqa: BLE001 - only for the message
            return None
        return self._runtime.cached_connection(
            {"host": values.get("host"), "deployment_name": values.get("deploymentName")}
        )

    # ---- resources: decoded, handed to the resource's handler, encoded ----------------------------------------

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        handler = _handler(request, context)
        news, secret = _snake(request.news, handler.props)
        added, failures = handler.check(request.urn, news, _OldInputs(request.olds, handler.props))
        # The inputs as sent: the engine keeps them (assets whole, secrets marked); the core normalizes again.
        inputs = struct_pb2.Struct()
        inputs.CopyFrom(request.news)
        for name in [k for k, v in added.items() if v is KEPT]:
            inputs.fields[d.camel(name)].CopyFrom(request.olds.fields[d.camel(name)])
            del added[name]
        added_struct = _camel(added, handler.props, set(added) & handler.secret_outputs(secret))
        wire.merge(inputs, added_struct, {d.camel(k): d.camel(v) for k, v in CHECKED_FROM.items()})
        return provider_pb2.CheckResponse(
            inputs=inputs,
            failures=[provider_pb2.CheckFailure(property=camel_path(p, handler.props), reason=r) for p, r in failures],
        )

    def Diff(self, request: Any, context: grpc.ServicerContext) -> Any:
        handler = _handler(request, context)
        olds, _ = _snake(request.olds, handler.props)
        old_inputs, _ = _snake(request.old_inputs, handler.props)
        # Every preview of an unchanged resource sends the inputs it sent before: read them once (a table's are
        # a thousand entries).
        same = _wire_bytes(request.news) == _wire_bytes(request.old_inputs)
        news = dict(old_inputs) if same else _snake(request.news, handler.props)[0]
        change = handler.diff(request.urn, request.id, olds, old_inputs, news)
        for note in change.notes:
            self.log.warn(request.urn, note)
        if not change.paths:
            return _unchanged(request, rewrite=change.rewrite)
        return provider_pb2.DiffResponse(
            changes=_SOME,
            replaces=[d.camel(k) for k in change.replaces],
            diffs=sorted({d.camel(k) for k in change.diffs}),
            detailedDiff=_detailed(change.paths, change.old_inputs, news, handler.props),
            hasDetailedDiff=True,
            deleteBeforeReplace=False,
        )

    @_user_facing("create")
    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        handler = _handler(request, context)
        if request.preview:  # what a create will give: the inputs, and what only the server knows unknown
            return provider_pb2.CreateResponse(properties=_previewed(request.properties, {}, handler))
        props, secret = _snake(request.properties, handler.props)
        id_, outputs = handler.create(self.api, request.urn, props, session=self._session(request.urn))
        return provider_pb2.CreateResponse(
            id=id_, properties=_camel(outputs, handler.props, handler.secret_outputs(secret))
        )

    @_user_facing("read")
    def Read(self, request: Any, context: grpc.ServicerContext) -> Any:
        handler = _handler(request, context)
        state, secret = _snake(request.properties, handler.props)
        stored, stored_secret = _snake(request.inputs, handler.props)
        found = handler.read(self.api, request.id, state, stored, urn=request.urn)
        if found is None:
            return provider_pb2.ReadResponse(id="")  # gone for good: the engine drops it from state
        inputs = (
            _read_inputs(found.inputs, request.inputs, handler.props, stored_secret)
            if found.inputs is not None
            else request.inputs  # kept as stored (assets without their contents cannot be handed back)
        )
        return provider_pb2.ReadResponse(
            id=request.id,
            properties=_camel(found.outputs, handler.props, handler.secret_outputs(secret | stored_secret)),
            inputs=inputs,
        )

    @_user_facing("update")
    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        handler = _handler(request, context)
        if request.preview:
            return provider_pb2.UpdateResponse(properties=_previewed(request.news, request.olds, handler))
        olds, _ = _snake(request.olds, handler.props)
        news, secret = _snake(request.news, handler.props)
        old_inputs, _ = _snake(request.old_inputs, handler.props)
        outputs = handler.update(self.api, request.id, olds, old_inputs, news, session=self._session(request.urn))
        return provider_pb2.UpdateResponse(properties=_camel(outputs, handler.props, handler.secret_outputs(secret)))

    @_user_facing("delete")
    def Delete(self, request: Any, context: grpc.ServicerContext) -> empty_pb2.Empty:
        handler = _handler(request, context)
        props, _ = _snake(request.properties, handler.props)
        old_inputs, _ = _snake(request.old_inputs, handler.props)
        kept = handler.delete(self.api, request.id, props, old_inputs)
        if kept is not None:
            self.log.warn(request.urn, kept)
        return empty_pb2.Empty()

    # ---- functions ------------------------------------------------------------------------------------------

    def Invoke(self, request: Any, context: grpc.ServicerContext) -> Any:
        function = FUNCTIONS.get(request.tok)
        if function is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown function {request.tok!r}")
            raise AssertionError  # abort raises; never reached
        args, _ = _snake(request.args, function.props)
        try:
            result = function.call(self.api(args), args)
        except InputError as exc:
            failure = provider_pb2.CheckFailure(property=camel_path(exc.prop, function.props), reason=exc.reason)
            return provider_pb2.InvokeResponse(failures=[failure])
        except MlflowRunsError as exc:
            context.abort(grpc.StatusCode.UNKNOWN, describe(exc, action="read", resource=None, keys=PLUGIN_KEYS))
        response = provider_pb2.InvokeResponse()
        getattr(response, "return").CopyFrom(wire.encode(result))  # a keyword Python cannot spell
        return response

    # ---- stopping -------------------------------------------------------------------------------------------

    def Cancel(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:
        """The engine's ``Cancel``: sent after a Ctrl-C of the CLI (which then waits, without a bound, for the
        calls in flight to end) and before it closes the plugin at the end of every command.

        The calls in flight go on, but a request of theirs that fails is not sent again: each ends after its
        remaining requests, each sent once. A create on a working server completes; one held by a failing
        server fails now (rolled back, or left for the next ``up`` to finish or take back) instead of riding out the
        retry deadline while the user waits. The plugin keeps serving: attached with
        ``PULUMI_DEBUG_PROVIDERS`` it serves the next command, whose ``Configure`` retries again. Answering
        tells the engine that the plugin's exit is expected from now on."""
        with self._lock:
            self._cancelled.set()
        return empty_pb2.Empty()

    def stop(self) -> None:
        """The plugin is stopping (``native.plugin``: SIGINT or SIGTERM): as ``Cancel``, for good."""
        with self._lock:
            self._stopping = True
            self._cancelled.set()
