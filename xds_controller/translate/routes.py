"""The gateway's RouteConfiguration: Seldon's external REST paths and gRPC headers to component clusters.

Per deployment, in this order (first match wins):
- REST with a Content-Length over the deployment's request limit -> a direct 413;
- gRPC: content-type application/grpc, headers `seldon: <name>` and `namespace: <ns>`, a Seldon, V2,
  TensorFlow, reflection or health method -> the predictors' `.grpc` clusters;
- REST: prefix `/seldon/<ns>/<name>/`, rewritten to `/` -> the predictors' `.http` clusters.
Then gRPC reflection naming no deployment -> the control plane's reflection server, and everything else
-> a direct 404 (turned into Seldon JSON or a gRPC status by the listener's local-reply config).

Non-shadow predictors split traffic with weighted clusters by `traffic` (hashed on a header when
`seldon.io/sticky-header` is set); shadows are request mirrors. Before each split route, one route per
predictor matches the request header `Seldon-Predictor: <name>` and pins the request to it. Retries,
timeouts and the body buffer come from the deployment's `TrafficPolicy`. Every response carries
`Seldon-Puid` (the request id) and `Seldon-Predictor`.

A REST graph request is answered over the graph ext_proc filter (extproc replies before the router
runs) or, with `GatewaySettings.extproc_rest` (`seldon-mesh up --graph-edge http`), routed like the gRPC
ones to extproc as an ordinary upstream: its REST edge, `EXTPROC_REST_CLUSTER`, told the predictor by the
`x-seldon-predictor` request header. Such a route retries only an unreachable extproc and waits up to
`MESSAGE_TIMEOUT_S` for the graph, whose node calls extproc bounds with the deployment's timeouts (so
the error names the node that timed out).

A direct (single-model) predictor with a payload `logger` is logged by its runtime, in process; where
its deployment asks for the stream instead (`seldon.io/payload-log-stream: "true"`), its routes and
weighted clusters turn on the observability-mode ext_proc filter (`OBSERVE_FILTER`) naming the predictor.
With gateway tracing, every deployment route tags Envoy's span with the deployment and the predictor it
names.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2, range_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

from xds_controller.translate.clusters import REFLECTION_CLUSTER
from xds_controller.translate.explainer import explainer_routes, is_explainer_view
from xds_controller.translate.extproc import (
    EXTPROC_CLUSTER,
    EXTPROC_FILTER_KEY,
    EXTPROC_REST_CLUSTER,
    GRAPH_BUFFER_FILTER,
    MESSAGE_TIMEOUT_S,
    OBSERVE_FILTER,
    enable_extproc,
    enable_extproc_http,
    enable_graph_buffer,
    enable_observe,
    extproc_per_route,
    observe_per_route,
    predictor_header,
)
from xds_controller.translate.model import DeploymentView, GatewaySettings, PredictorView
from xds_controller.translate.plan import (
    Direct,
    Graph,
    PredictorPlan,
    Transport,
    cluster_name,
    logs_over_stream,
    plan_predictor,
)
from xds_controller.translate.policy import TrafficPolicy, policy_of
from xds_controller.translate.scopes import (
    DEFAULT_ROUTE_CONFIG,
    GRPC_SERVICE_PREFIXES,
    SCOPE_HEADER,
    route_config_name,
)
from xds_controller.translate.tracing import route_tracing

ROUTE_CONFIG_NAME = "seldon-gateway"
PUID_HEADER = "seldon-puid"
PREDICTOR_HEADER = "Seldon-Predictor"
# A request carrying it is sent to the predictor it names (a pinned route, placed before the split).
PREDICTOR_REQUEST_HEADER = "seldon-predictor"

REFLECTION_PREFIX = "/grpc.reflection."  # the gRPC reflection services' paths
_GRPC_PATH_REGEX = "/(" + "|".join(p.replace(".", r"\.") for p in GRPC_SERVICE_PREFIXES) + r")\.[^/]+/[^/]+"

NOT_FOUND_BODY = "no SeldonDeployment serves this request"
GRAPH_RETRY_ON = "connect-failure,refused-stream"
GRAPH_RETRIES = 2
EXTPROC_CLUSTERS = (EXTPROC_CLUSTER, EXTPROC_REST_CLUSTER)


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    return packed


def _header(key: str, value: str, action: int) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value), append_action=action)


def _predictor_header(predictor: str) -> base_pb2.HeaderValueOption:
    return _header(PREDICTOR_HEADER, predictor, base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD)


def _exact(name: str, value: str) -> route_components_pb2.HeaderMatcher:
    return route_components_pb2.HeaderMatcher(name=name, string_match=string_pb2.StringMatcher(exact=value))


def _duration(millis: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=millis // 1000, nanos=(millis % 1000) * 1_000_000)


def _weights(plans: Sequence[PredictorPlan], traffic: dict[str, int]) -> list[tuple[PredictorPlan, int]]:
    weighted = [(plan, traffic[plan.predictor]) for plan in plans if traffic[plan.predictor] > 0]
    return weighted or [(plan, 1) for plan in plans]


DEFAULT_POLICY = TrafficPolicy()


def _retries_differ(policy: TrafficPolicy) -> bool:
    """Whether a deployment needs its own retry policy rather than the virtual host's default."""
    return (policy.retries, policy.retry_on, policy.per_try_timeout_ms) != (
        DEFAULT_POLICY.retries,
        DEFAULT_POLICY.retry_on,
        DEFAULT_POLICY.per_try_timeout_ms,
    )


def _retry_policy(policy: TrafficPolicy) -> route_components_pb2.RetryPolicy:
    retry = route_components_pb2.RetryPolicy(
        retry_on=policy.retry_on,
        num_retries=wrappers_pb2.UInt32Value(value=policy.retries),
        # Try another replica when there is one; with a single replica the same one is retried.
        retry_host_predicate=[
            route_components_pb2.RetryPolicy.RetryHostPredicate(
                name="envoy.retry_host_predicates.previous_hosts",
                typed_config=_packed(previous_hosts_pb2.PreviousHostsPredicate()),
            )
        ],
        host_selection_retry_max_attempts=3,
    )
    if policy.per_try_timeout_ms is not None:
        retry.per_try_timeout.CopyFrom(_duration(policy.per_try_timeout_ms))
    return retry


def _mirrors(
    deployment: DeploymentView, transport: Transport
) -> list[route_components_pb2.RouteAction.RequestMirrorPolicy]:
    """One mirror per shadow: Envoy sends it a copy, and neither waits for it nor shows its answer."""
    mirrors = []
    for shadow in (p for p in deployment.spec.predictors if p.shadow):
        shadow_plan = plan_predictor(deployment, shadow)
        if isinstance(shadow_plan, Graph):
            continue  # a graph shadow waits for the graph executor, like a graph primary
        mirror = route_components_pb2.RouteAction.RequestMirrorPolicy(
            cluster=cluster_name(shadow_plan.component, transport)
        )
        if 0 < shadow.traffic < 100:
            mirror.runtime_fraction.CopyFrom(
                base_pb2.RuntimeFractionalPercent(
                    default_value=percent_pb2.FractionalPercent(
                        numerator=shadow.traffic, denominator=percent_pb2.FractionalPercent.HUNDRED
                    )
                )
            )
        mirrors.append(mirror)
    return mirrors


def _action(
    deployment: DeploymentView, transport: Transport, policy: TrafficPolicy
) -> route_components_pb2.RouteAction:
    """What every forwarding route of a deployment shares: shadows, retries, timeout, prefix rewrite."""
    action = route_components_pb2.RouteAction(request_mirror_policies=_mirrors(deployment, transport))
    if _retries_differ(policy):
        action.retry_policy.CopyFrom(_retry_policy(policy))
    timeout = policy.grpc_timeout_ms if transport is Transport.GRPC else policy.rest_timeout_ms
    # No annotation, no overall timeout, as in Seldon and Istio (0 turns off Envoy's default of 15 s):
    # a model that takes a minute answers in a minute.
    action.timeout.CopyFrom(_duration(timeout) if timeout is not None else duration_pb2.Duration(seconds=0))
    if transport is Transport.HTTP:
        action.prefix_rewrite = "/"
    return action


def _target(plan: PredictorPlan, transport: Transport, rest_edge: bool = False) -> str:
    """A direct predictor's component cluster, or extproc for a graph (REST: ext_proc answers first,
    or with `rest_edge` extproc's REST edge is the upstream)."""
    if isinstance(plan, Direct):
        return cluster_name(plan.component, transport)
    return EXTPROC_REST_CLUSTER if rest_edge and transport is Transport.HTTP else EXTPROC_CLUSTER


def _forward(
    deployment: DeploymentView,
    transport: Transport,
    policy: TrafficPolicy,
    extproc: bool = False,
    rest_edge: bool = False,
) -> tuple[route_components_pb2.RouteAction | None, route_components_pb2.DirectResponseAction | None, str]:
    """The action for one deployment and transport, and the predictor to name when there is one."""
    primaries = [p for p in deployment.spec.predictors if not p.shadow]
    plans = [plan_predictor(deployment, p) for p in primaries]
    graphs = [plan for plan in plans if isinstance(plan, Graph)]
    if graphs and not extproc:
        body = base_pb2.DataSource(inline_string=graphs[0].reason)
        return None, route_components_pb2.DirectResponseAction(status=501, body=body), graphs[0].predictor
    directs = plans
    if not directs:
        meta = deployment.metadata
        body = base_pb2.DataSource(
            inline_string=f"SeldonDeployment {meta.namespace}/{meta.name} has no predictor"
        )
        return None, route_components_pb2.DirectResponseAction(status=503, body=body), ""
    action = _action(deployment, transport, policy)
    weighted = _weights(directs, {p.name: p.traffic for p in primaries})
    logged = {p.name for p in primaries if _logged(deployment, p)} if extproc else set()
    predictor = ""
    if len(weighted) == 1:
        action.cluster = _target(weighted[0][0], transport, rest_edge)
        predictor = weighted[0][0].predictor
    else:
        for plan, weight in weighted:
            entry = route_components_pb2.WeightedCluster.ClusterWeight(
                name=_target(plan, transport, rest_edge),
                weight=wrappers_pb2.UInt32Value(value=weight),
                response_headers_to_add=[_predictor_header(plan.predictor)],
            )
            if graphs and transport is Transport.HTTP and not rest_edge:
                entry.typed_per_filter_config[EXTPROC_FILTER_KEY].CopyFrom(
                    extproc_per_route(plan.predictor if isinstance(plan, Graph) else None)
                )
            elif isinstance(plan, Graph):
                entry.request_headers_to_add.append(predictor_header(plan.predictor))
            if logged:
                entry.typed_per_filter_config[OBSERVE_FILTER].CopyFrom(
                    observe_per_route(plan.predictor if plan.predictor in logged else None)
                )
            action.weighted_clusters.clusters.append(entry)
        if policy.sticky_header:
            # The split is decided by a hash of the header's value instead of a random number, so one
            # value keeps landing on one predictor; requests without the header are split at random.
            action.weighted_clusters.use_hash_policy.value = True
            action.hash_policy.append(
                route_components_pb2.RouteAction.HashPolicy(
                    header=route_components_pb2.RouteAction.HashPolicy.Header(
                        header_name=policy.sticky_header
                    )
                )
            )
    return action, None, predictor


def _logged(deployment: DeploymentView, predictor: PredictorView) -> bool:
    """A direct predictor whose node has a payload logger, in a deployment that asks for the observe
    stream (`logs_over_stream`): the observe filter logs it. By default its runtime logs it in process."""
    if not logs_over_stream(deployment):
        return False
    plan = plan_predictor(deployment, predictor)
    return isinstance(plan, Direct) and any(getattr(n, "logger", None) is not None for n in predictor.nodes())


def _route_name(deployment: DeploymentView, transport: Transport, predictor: str = "") -> str:
    meta = deployment.metadata
    pinned = f".pin.{predictor}" if predictor else ""
    return f"{meta.namespace}.{meta.name}{pinned}.{transport.value}"


def _buffered(route: route_components_pb2.Route, policy: TrafficPolicy) -> route_components_pb2.Route:
    route.request_body_buffer_limit.value = policy.buffer_bytes
    return route


TOO_LARGE_INFO = "request body over the {limit} byte limit (seldon.io/grpc-max-message-size)"


def _too_large_route(deployment: DeploymentView, prefix: str, limit: int) -> route_components_pb2.Route:
    """First of a deployment's routes: a REST request whose Content-Length is over the deployment's limit
    is answered 413 at once, its body unread (the listener's local replies give it the Seldon or V2 error
    shape). A body without a length, and gRPC messages, are bounded by the runtime or extproc behind."""
    over = route_components_pb2.HeaderMatcher(
        name="content-length", range_match=range_pb2.Int64Range(start=limit + 1, end=2**63 - 1)
    )
    meta = deployment.metadata
    return route_components_pb2.Route(
        name=f"{meta.namespace}.{meta.name}.too-large",
        match=route_components_pb2.RouteMatch(prefix=prefix, headers=[over]),
        direct_response=route_components_pb2.DirectResponseAction(
            status=413, body=base_pb2.DataSource(inline_string=TOO_LARGE_INFO.format(limit=limit))
        ),
    )


def _pinned_routes(
    deployment: DeploymentView,
    transport: Transport,
    match: route_components_pb2.RouteMatch,
    policy: TrafficPolicy,
    extproc: bool = False,
    rest_edge: bool = False,
) -> list[route_components_pb2.Route]:
    """`Seldon-Predictor: <name>` sends a request to that predictor (shadows too), bypassing the split.

    Only for deployments with more than one predictor: with one, the header changes nothing.
    """
    if len(deployment.spec.predictors) < 2:
        return []
    routes = []
    for predictor in deployment.spec.predictors:
        plan = plan_predictor(deployment, predictor)
        if not isinstance(plan, Direct) and not extproc:
            continue
        pinned = route_components_pb2.RouteMatch()
        pinned.CopyFrom(match)
        pinned.headers.append(_exact(PREDICTOR_REQUEST_HEADER, predictor.name))
        action = _action(deployment, transport, policy)
        action.cluster = _target(plan, transport, rest_edge)
        route = route_components_pb2.Route(
            name=_route_name(deployment, transport, predictor.name),
            match=pinned,
            route=action,
            response_headers_to_add=[_predictor_header(predictor.name)],
        )
        if isinstance(plan, Graph):
            _serve_graph(route, plan.predictor, transport, rest_edge)
        elif extproc and _logged(deployment, predictor):
            route.typed_per_filter_config[OBSERVE_FILTER].CopyFrom(enable_observe(predictor.name))
        routes.append(_buffered(route, policy))
    return routes


def _deployment_route(
    deployment: DeploymentView,
    transport: Transport,
    match: route_components_pb2.RouteMatch,
    policy: TrafficPolicy,
    extproc: bool = False,
    rest_edge: bool = False,
) -> route_components_pb2.Route:
    route = route_components_pb2.Route(name=_route_name(deployment, transport), match=match)
    action, direct, predictor = _forward(deployment, transport, policy, extproc, rest_edge)
    if action is not None:
        route.route.CopyFrom(action)
        _buffered(route, policy)
        if action.cluster in EXTPROC_CLUSTERS:
            _serve_graph(route, predictor, transport, rest_edge)
        elif EXTPROC_REST_CLUSTER in _clusters_of(action):
            # A split with a graph behind the REST edge (each weighted cluster names its predictor): as on
            # a graph's own route, the whole graph gets what an ext_proc exchange gets, and only an
            # unreachable extproc is retried (a 5xx it answers came from a node; a retry would run every
            # node again). Both apply to the split's direct predictors too.
            route.route.timeout.CopyFrom(duration_pb2.Duration(seconds=MESSAGE_TIMEOUT_S))
            route.route.retry_policy.retry_on = GRAPH_RETRY_ON
            route.route.retry_policy.num_retries.value = GRAPH_RETRIES
        elif transport is Transport.HTTP and EXTPROC_CLUSTER in _clusters_of(action):
            # A split with a graph: enable ext_proc here; each weighted cluster then names its graph
            # predictor, or turns ext_proc off for a direct one.
            _serve_graph(route, None, transport)
        if any(OBSERVE_FILTER in c.typed_per_filter_config for c in action.weighted_clusters.clusters):
            # A split with a logged direct predictor: each weighted cluster logs, or not.
            route.typed_per_filter_config[OBSERVE_FILTER].CopyFrom(enable_observe(None))
        elif action.cluster not in EXTPROC_CLUSTERS and extproc and _is_logged(deployment, predictor):
            route.typed_per_filter_config[OBSERVE_FILTER].CopyFrom(enable_observe(predictor))
    else:
        route.direct_response.CopyFrom(direct)
    if predictor:
        route.response_headers_to_add.append(_predictor_header(predictor))
    return route


def _is_logged(deployment: DeploymentView, name: str) -> bool:
    return any(p.name == name and _logged(deployment, p) for p in deployment.spec.predictors)


def _clusters_of(action: route_components_pb2.RouteAction) -> set[str]:
    return {action.cluster} | {c.name for c in action.weighted_clusters.clusters}


def _serve_graph(
    route: route_components_pb2.Route, predictor: str | None, transport: Transport, rest_edge: bool = False
) -> None:
    """REST: enable the (disabled by default) ext_proc filter; gRPC, or REST with `rest_edge`: tell
    extproc's upstream edge which graph."""
    if transport is Transport.HTTP and not rest_edge:
        route.typed_per_filter_config[EXTPROC_FILTER_KEY].CopyFrom(enable_extproc(predictor))
    elif predictor:
        route.request_headers_to_add.append(predictor_header(predictor))
        if route.route.cluster == EXTPROC_REST_CLUSTER:
            # extproc bounds each node call by the deployment's REST timeout and names the node that
            # timed out; Envoy waits for the whole graph, as long as it would for an ext_proc reply.
            route.route.timeout.CopyFrom(duration_pb2.Duration(seconds=MESSAGE_TIMEOUT_S))
        if route.route.cluster in EXTPROC_CLUSTERS:
            # Retry only when extproc itself is unreachable (this overrides the virtual host's policy): an
            # UNAVAILABLE it answers means a graph node was, and a retry would run every node again.
            route.route.retry_policy.retry_on = GRAPH_RETRY_ON
            route.route.retry_policy.num_retries.value = GRAPH_RETRIES


def _translation_routes(
    deployment: DeploymentView,
    grpc_match: route_components_pb2.RouteMatch,
    rest_match: route_components_pb2.RouteMatch,
    rest_edge: bool = False,
) -> list[route_components_pb2.Route]:
    """A V2 deployment with one single-model predictor answers Seldon v1 clients through extproc.

    Its V2 paths and services still go straight to the runtime; only `/api/...` and `seldon.protos.*`
    (which a V2 server does not speak) take the translating detour. Graphs go through extproc anyway.
    """
    if str(getattr(deployment.spec, "protocol", "seldon")) not in ("v2", "kfserving"):
        return []
    primaries = [p for p in deployment.spec.predictors if not p.shadow]
    if len(primaries) != 1 or not isinstance(plan_predictor(deployment, primaries[0]), Direct):
        return []
    predictor = primaries[0].name
    seldon_grpc = route_components_pb2.RouteMatch()
    seldon_grpc.CopyFrom(grpc_match)
    seldon_grpc.safe_regex.regex = r"/seldon\.protos\.[^/]+/[^/]+"
    seldon_rest = route_components_pb2.RouteMatch(prefix=f"{rest_match.prefix}api/")
    routes = []
    for transport, match in ((Transport.GRPC, seldon_grpc), (Transport.HTTP, seldon_rest)):
        route = route_components_pb2.Route(
            name=f"{_route_name(deployment, transport)}.translate",
            match=match,
            route=route_components_pb2.RouteAction(
                cluster=EXTPROC_REST_CLUSTER if rest_edge and transport is Transport.HTTP else EXTPROC_CLUSTER
            ),
            response_headers_to_add=[_predictor_header(predictor)],
        )
        _serve_graph(route, predictor, transport, rest_edge)
        routes.append(route)
    return routes


def deployment_routes(
    deployment: DeploymentView,
    extproc: bool = False,
    traced: bool = False,
    rest_edge: bool = False,
    extproc_http: bool = False,
    scoped: bool = False,
) -> list[route_components_pb2.Route]:
    """`extproc`: the gateway has extproc (graphs, translation, logging); `traced`: Envoy traces, so
    each route tags its span with the deployment and the predictor it names (none for a split);
    `rest_edge`: REST graph and translation routes go to extproc's REST edge instead of ext_proc;
    `extproc_http` (with `rest_edge`): those not split also enable the graph filter over `http_service`,
    which answers requests with a body before the router (see `extproc.enable_extproc_http`);
    `scoped`: the routes go into the deployment's own RouteConfiguration, whose scope the Lua filter
    chose for gRPC only when the path names one of `GRPC_SERVICE_PREFIXES` (`scopes.SCOPE_SCRIPT`), so
    gRPC routes match any path there instead of compiling `_GRPC_PATH_REGEX` again for each of them
    (Envoy keeps a compiled RE2 per matcher: ~8 KB each, ~250 MB over 10,000 deployments' routes)."""
    if is_explainer_view(deployment):  # a deployment's explainers (see `translate.explainer`)
        return explainer_routes(deployment)
    meta = deployment.metadata
    grpc_match = route_components_pb2.RouteMatch(
        grpc=route_components_pb2.RouteMatch.GrpcRouteMatchOptions(),
        headers=[_exact("seldon", meta.name), _exact("namespace", meta.namespace)],
    )
    if scoped:
        grpc_match.prefix = "/"
    else:
        grpc_match.safe_regex.regex = _GRPC_PATH_REGEX
    rest_match = route_components_pb2.RouteMatch(prefix=f"/seldon/{meta.namespace}/{meta.name}/")
    policy = policy_of(deployment.annotations)
    routes = [
        _too_large_route(deployment, rest_match.prefix, policy.request_limit_bytes),
        *(_translation_routes(deployment, grpc_match, rest_match, rest_edge) if extproc else []),
        *_pinned_routes(deployment, Transport.GRPC, grpc_match, policy, extproc),
        _deployment_route(deployment, Transport.GRPC, grpc_match, policy, extproc),
        *_pinned_routes(deployment, Transport.HTTP, rest_match, policy, extproc, rest_edge),
        _deployment_route(deployment, Transport.HTTP, rest_match, policy, extproc, rest_edge),
    ]
    if extproc_http and rest_edge:
        for route in routes:
            if route.route.cluster == EXTPROC_REST_CLUSTER:
                route.typed_per_filter_config[EXTPROC_FILTER_KEY].CopyFrom(enable_extproc_http())
                # the graph's whole body, up to the request limit (Envoy answers 413 beyond it)
                limit = policy.request_limit_bytes
                route.typed_per_filter_config[GRAPH_BUFFER_FILTER].CopyFrom(enable_graph_buffer(limit))
    if traced:
        for route in routes:
            # the predictor a route names is the one its `Seldon-Predictor` response header names
            named = [
                h.header.value for h in route.response_headers_to_add if h.header.key == PREDICTOR_HEADER
            ]
            route.tracing.CopyFrom(route_tracing(meta.name, named[0] if named else None))
    return routes


# The V2 repository extension (load, unload, index) administers a runtime: the gateway serves inference,
# metadata, health, feedback and documentation only, so it answers these 404 (gRPC: UNIMPLEMENTED).
REPOSITORY_REST = r"/seldon/[^/]+/[^/]+/v2/repository(/.*)?"
REPOSITORY_GRPC_PREFIX = "/inference.GRPCInferenceService/Repository"
CONTROL_ROUTES = frozenset({"repository.rest", "repository.grpc"})  # ahead of every deployment's routes


def _control_routes(rest_prefix: str = "") -> list[route_components_pb2.Route]:
    """First in every route configuration: administration never reaches a runtime. A deployment's own
    configuration (`rest_prefix`, its `/seldon/<ns>/<name>/`) matches its repository path by prefix,
    not by `REPOSITORY_REST`: Envoy keeps a compiled RE2 per regex matcher, ~7 KB for this one, 70 MB
    over 10,000 scoped deployments."""
    not_found = route_components_pb2.DirectResponseAction(
        status=404, body=base_pb2.DataSource(inline_string=NOT_FOUND_BODY)
    )
    rest = (
        route_components_pb2.RouteMatch(path_separated_prefix=f"{rest_prefix}v2/repository")
        if rest_prefix
        else route_components_pb2.RouteMatch(safe_regex=regex_pb2.RegexMatcher(regex=REPOSITORY_REST))
    )
    grpc = route_components_pb2.RouteMatch(prefix=REPOSITORY_GRPC_PREFIX)
    return [
        route_components_pb2.Route(name="repository.rest", match=rest, direct_response=not_found),
        route_components_pb2.Route(name="repository.grpc", match=grpc, direct_response=not_found),
    ]


def _tail_routes(gateway: GatewaySettings) -> list[route_components_pb2.Route]:
    """Reflection naming no deployment, then a 404 for everything else."""
    routes: list[route_components_pb2.Route] = []
    if gateway.reflection is not None:
        routes.append(
            route_components_pb2.Route(
                name="reflection",
                match=route_components_pb2.RouteMatch(
                    prefix=REFLECTION_PREFIX, grpc=route_components_pb2.RouteMatch.GrpcRouteMatchOptions()
                ),
                # Reflection is a stream that lives as long as grpcurl's session: no route timeout.
                route=route_components_pb2.RouteAction(
                    cluster=REFLECTION_CLUSTER, timeout=duration_pb2.Duration(seconds=0)
                ),
            )
        )
    routes.append(_not_found())
    return routes


def _not_found() -> route_components_pb2.Route:
    return route_components_pb2.Route(
        name="not-found",
        match=route_components_pb2.RouteMatch(prefix="/"),
        direct_response=route_components_pb2.DirectResponseAction(
            status=404, body=base_pb2.DataSource(inline_string=NOT_FOUND_BODY)
        ),
    )


def _route_configuration(
    name: str, routes: Sequence[route_components_pb2.Route], gateway: GatewaySettings
) -> route_pb2.RouteConfiguration:
    host = route_components_pb2.VirtualHost(
        name="seldon",
        domains=["*"],
        routes=routes,
        # The default retry policy once for every route: per route it would be instantiated
        # tens of thousands of times, and it is most of the cost of a route update at scale.
        retry_policy=_retry_policy(DEFAULT_POLICY),
    )
    config = route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[host],
        request_headers_to_add=[
            _header(PUID_HEADER, "%REQ(x-request-id)%", base_pb2.HeaderValueOption.ADD_IF_ABSENT)
        ],
        response_headers_to_add=[
            _header(
                "Seldon-Puid",
                f"%REQ({PUID_HEADER}?x-request-id)%",
                base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        ],
    )
    if gateway.scoped:
        config.request_headers_to_remove.append(SCOPE_HEADER)
    return config


def gateway_routes(
    deployments: Sequence[DeploymentView], gateway: GatewaySettings
) -> route_pb2.RouteConfiguration:
    """The one RouteConfiguration of an unscoped gateway: routes for `deployments` in the order given
    (translate sorts them), then reflection and 404."""
    routes: list[route_components_pb2.Route] = []
    for deployment in deployments:
        routes.extend(
            deployment_routes(
                deployment,
                gateway.extproc is not None,
                gateway.tracing is not None,
                rest_edge=gateway.extproc_rest is not None,
                extproc_http=gateway.extproc_http,
            )
        )
    return _route_configuration(
        ROUTE_CONFIG_NAME, [*_control_routes(), *routes, *_tail_routes(gateway)], gateway
    )


def deployment_route_config(
    deployment: DeploymentView, gateway: GatewaySettings
) -> route_pb2.RouteConfiguration:
    """A scoped gateway's RouteConfiguration of one deployment: its routes, then a 404."""
    meta = deployment.metadata
    routes = deployment_routes(
        deployment,
        gateway.extproc is not None,
        gateway.tracing is not None,
        rest_edge=gateway.extproc_rest is not None,
        extproc_http=gateway.extproc_http,
        scoped=True,
    )
    routes.append(_not_found())
    return _route_configuration(
        route_config_name(meta.namespace, meta.name),
        [*_control_routes(f"/seldon/{meta.namespace}/{meta.name}/"), *routes],
        gateway,
    )


def default_route_config(gateway: GatewaySettings) -> route_pb2.RouteConfiguration:
    """A scoped gateway's RouteConfiguration for requests naming no deployment: reflection and 404."""
    return _route_configuration(DEFAULT_ROUTE_CONFIG, _tail_routes(gateway), gateway)
