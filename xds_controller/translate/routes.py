"""The gateway's RouteConfiguration: Seldon's external REST paths and gRPC headers to component clusters.

Per deployment, in this order (first match wins):
- gRPC: content-type application/grpc, headers `seldon: <name>` and `namespace: <ns>`, a Seldon, V2,
  TensorFlow, reflection or health method -> the predictors' `.grpc` clusters;
- REST: prefix `/seldon/<ns>/<name>/`, rewritten to `/` -> the predictors' `.http` clusters.
Then gRPC reflection naming no deployment -> the control plane's reflection server, and everything else
-> a direct 404 (turned into Seldon JSON or a gRPC status by the listener's local-reply config).

Non-shadow predictors split traffic with weighted clusters by `traffic`; shadows are request mirrors.
Every response carries `Seldon-Puid` (the request id) and `Seldon-Predictor`.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from xds_controller.translate.clusters import REFLECTION_CLUSTER
from xds_controller.translate.model import DeploymentView, GatewaySettings
from xds_controller.translate.plan import Direct, Graph, Transport, cluster_name, plan_predictor

ROUTE_CONFIG_NAME = "seldon-gateway"
PUID_HEADER = "seldon-puid"
PREDICTOR_HEADER = "Seldon-Predictor"
# Seldon's annotations for per-deployment timeouts, in milliseconds.
REST_TIMEOUT_ANNOTATION = "seldon.io/rest-timeout"
GRPC_TIMEOUT_ANNOTATION = "seldon.io/grpc-timeout"

# gRPC services a deployment answers (v1 constants.go plus reflection and health).
GRPC_SERVICE_PREFIXES = ("seldon.protos", "tensorflow.serving", "inference", "grpc.reflection", "grpc.health")
_GRPC_PATH_REGEX = "/(" + "|".join(p.replace(".", r"\.") for p in GRPC_SERVICE_PREFIXES) + r")\.[^/]+/[^/]+"

NOT_FOUND_BODY = "no SeldonDeployment serves this request"


def _header(key: str, value: str, action: int) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value), append_action=action)


def _predictor_header(predictor: str) -> base_pb2.HeaderValueOption:
    return _header(PREDICTOR_HEADER, predictor, base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD)


def _exact(name: str, value: str) -> route_components_pb2.HeaderMatcher:
    return route_components_pb2.HeaderMatcher(name=name, string_match=string_pb2.StringMatcher(exact=value))


def _timeout(deployment: DeploymentView, annotation: str) -> duration_pb2.Duration | None:
    raw = deployment.annotations.get(annotation)
    if raw is None or not raw.strip().isdigit():
        return None
    millis = int(raw)
    return duration_pb2.Duration(seconds=millis // 1000, nanos=(millis % 1000) * 1_000_000)


def _weights(plans: Sequence[Direct], traffic: dict[str, int]) -> list[tuple[Direct, int]]:
    weighted = [(plan, traffic[plan.predictor]) for plan in plans if traffic[plan.predictor] > 0]
    return weighted or [(plan, 1) for plan in plans]


def _forward(
    deployment: DeploymentView, transport: Transport
) -> tuple[route_components_pb2.RouteAction | None, route_components_pb2.DirectResponseAction | None, str]:
    """The action for one deployment and transport, and the predictor to name when there is one."""
    primaries = [p for p in deployment.spec.predictors if not p.shadow]
    plans = [plan_predictor(deployment, p) for p in primaries]
    graphs = [plan for plan in plans if isinstance(plan, Graph)]
    if graphs:
        body = base_pb2.DataSource(inline_string=graphs[0].reason)
        return None, route_components_pb2.DirectResponseAction(status=501, body=body), graphs[0].predictor
    directs = [plan for plan in plans if isinstance(plan, Direct)]
    if not directs:
        meta = deployment.metadata
        body = base_pb2.DataSource(
            inline_string=f"SeldonDeployment {meta.namespace}/{meta.name} has no predictor"
        )
        return None, route_components_pb2.DirectResponseAction(status=503, body=body), ""
    action = route_components_pb2.RouteAction()
    weighted = _weights(directs, {p.name: p.traffic for p in primaries})
    predictor = ""
    if len(weighted) == 1:
        action.cluster = cluster_name(weighted[0][0].component, transport)
        predictor = weighted[0][0].predictor
    else:
        for plan, weight in weighted:
            action.weighted_clusters.clusters.append(
                route_components_pb2.WeightedCluster.ClusterWeight(
                    name=cluster_name(plan.component, transport),
                    weight=wrappers_pb2.UInt32Value(value=weight),
                    response_headers_to_add=[_predictor_header(plan.predictor)],
                )
            )
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
        action.request_mirror_policies.append(mirror)
    timeout = _timeout(
        deployment, GRPC_TIMEOUT_ANNOTATION if transport is Transport.GRPC else REST_TIMEOUT_ANNOTATION
    )
    if timeout is not None:
        action.timeout.CopyFrom(timeout)
    return action, None, predictor


def _deployment_route(
    deployment: DeploymentView, transport: Transport, match: route_components_pb2.RouteMatch
) -> route_components_pb2.Route:
    meta = deployment.metadata
    route = route_components_pb2.Route(name=f"{meta.namespace}.{meta.name}.{transport.value}", match=match)
    action, direct, predictor = _forward(deployment, transport)
    if action is not None:
        if transport is Transport.HTTP:
            action.prefix_rewrite = "/"
        route.route.CopyFrom(action)
    else:
        route.direct_response.CopyFrom(direct)
    if predictor:
        route.response_headers_to_add.append(_predictor_header(predictor))
    return route


def deployment_routes(deployment: DeploymentView) -> list[route_components_pb2.Route]:
    meta = deployment.metadata
    grpc_match = route_components_pb2.RouteMatch(
        safe_regex=regex_pb2.RegexMatcher(regex=_GRPC_PATH_REGEX),
        grpc=route_components_pb2.RouteMatch.GrpcRouteMatchOptions(),
        headers=[_exact("seldon", meta.name), _exact("namespace", meta.namespace)],
    )
    rest_match = route_components_pb2.RouteMatch(prefix=f"/seldon/{meta.namespace}/{meta.name}/")
    return [
        _deployment_route(deployment, Transport.GRPC, grpc_match),
        _deployment_route(deployment, Transport.HTTP, rest_match),
    ]


def gateway_routes(
    deployments: Sequence[DeploymentView], gateway: GatewaySettings
) -> route_pb2.RouteConfiguration:
    """Routes for `deployments` in the order given (translate sorts them), then reflection and 404."""
    routes: list[route_components_pb2.Route] = []
    for deployment in deployments:
        routes.extend(deployment_routes(deployment))
    if gateway.reflection is not None:
        routes.append(
            route_components_pb2.Route(
                name="reflection",
                match=route_components_pb2.RouteMatch(
                    prefix="/grpc.reflection.", grpc=route_components_pb2.RouteMatch.GrpcRouteMatchOptions()
                ),
                # Reflection is a stream that lives as long as grpcurl's session: no route timeout.
                route=route_components_pb2.RouteAction(
                    cluster=REFLECTION_CLUSTER, timeout=duration_pb2.Duration(seconds=0)
                ),
            )
        )
    routes.append(
        route_components_pb2.Route(
            name="not-found",
            match=route_components_pb2.RouteMatch(prefix="/"),
            direct_response=route_components_pb2.DirectResponseAction(
                status=404, body=base_pb2.DataSource(inline_string=NOT_FOUND_BODY)
            ),
        )
    )
    return route_pb2.RouteConfiguration(
        name=ROUTE_CONFIG_NAME,
        virtual_hosts=[route_components_pb2.VirtualHost(name="seldon", domains=["*"], routes=routes)],
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
