"""Translation of traffic policy: pinning, sticky splits, shadows, retries, timeouts, buffers, cluster
resilience and message-size windows."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from tests.xds_controller import builders as b
from xds_controller.translate import GatewaySettings, Resources, translate
from xds_controller.translate.policy import DEFAULT_BUFFER_BYTES, policy_of
from xds_controller.translate.routes import CONTROL_ROUTES

GATEWAY = GatewaySettings(listen_port=8123)


def _config(resources: Resources) -> route_pb2.RouteConfiguration:
    (config,) = resources.routes
    assert isinstance(config, route_pb2.RouteConfiguration)
    return config


def _routes(resources: Resources) -> list[route_components_pb2.Route]:
    """The deployment routes and the tail, without the repository 404s every configuration starts with
    and the size limit's 413 each deployment's routes start with."""
    routes = _config(resources).virtual_hosts[0].routes
    return [r for r in routes if r.name not in CONTROL_ROUTES and not r.name.endswith(".too-large")]


def _canary(**annotations: str) -> b.Deployment:
    dep = b.deployment(
        "ab",
        b.Predictor("main", b.Unit("model"), traffic=75),
        b.Predictor("canary", b.Unit("model"), traffic=25),
        b.Predictor("dark", b.Unit("model"), traffic=30, shadow=True),
        b.Predictor("copy", b.Unit("model"), shadow=True),
    )
    dep.annotations.update(annotations)
    return dep


def test_pinned_routes_come_before_the_split_for_each_transport() -> None:
    names = [r.name for r in _routes(translate([_canary()], {}, GATEWAY))]
    assert names[:10] == [
        "default.ab.pin.main.grpc",
        "default.ab.pin.canary.grpc",
        "default.ab.pin.dark.grpc",
        "default.ab.pin.copy.grpc",
        "default.ab.grpc",
        "default.ab.pin.main.http",
        "default.ab.pin.canary.http",
        "default.ab.pin.dark.http",
        "default.ab.pin.copy.http",
        "default.ab.http",
    ]
    pinned = _routes(translate([_canary()], {}, GATEWAY))[6]
    assert [(h.name, h.string_match.exact) for h in pinned.match.headers] == [("seldon-predictor", "canary")]
    assert pinned.route.cluster == "default.ab.canary.model.http"
    assert len(pinned.route.request_mirror_policies) == 2  # pinned requests are mirrored too


def test_split_weights_shadows_and_sticky_hashing() -> None:
    split = _routes(translate([_canary(**{"seldon.io/sticky-header": "X-User"})], {}, GATEWAY))[9]
    weights = {c.name: c.weight.value for c in split.route.weighted_clusters.clusters}
    assert weights == {"default.ab.main.model.http": 75, "default.ab.canary.model.http": 25}
    assert split.route.weighted_clusters.use_hash_policy.value
    assert [p.header.header_name for p in split.route.hash_policy] == ["x-user"]
    mirrors = {m.cluster: m for m in split.route.request_mirror_policies}
    assert set(mirrors) == {"default.ab.dark.model.http", "default.ab.copy.model.http"}
    assert mirrors["default.ab.dark.model.http"].runtime_fraction.default_value.numerator == 30
    assert not mirrors["default.ab.copy.model.http"].HasField("runtime_fraction")  # traffic 0: all of it
    plain = _routes(translate([_canary()], {}, GATEWAY))[9]
    assert not plain.route.weighted_clusters.HasField("use_hash_policy")
    assert not plain.route.hash_policy


def test_default_retries_live_on_the_virtual_host_and_annotations_override_per_route() -> None:
    default = translate([_canary()], {}, GATEWAY)
    host = _config(default).virtual_hosts[0]
    assert host.retry_policy.retry_on == "connect-failure,refused-stream,unavailable,5xx"
    assert host.retry_policy.num_retries.value == 2
    assert not _routes(default)[9].route.HasField("retry_policy")
    annotated = _canary(
        **{"seldon.io/retries": "4", "seldon.io/retry-on": "reset, 5xx", "seldon.io/per-try-timeout": "1500"}
    )
    route = _routes(translate([annotated], {}, GATEWAY))[9].route
    assert (route.retry_policy.retry_on, route.retry_policy.num_retries.value) == ("reset,5xx", 4)
    assert (route.retry_policy.per_try_timeout.seconds, route.retry_policy.per_try_timeout.nanos) == (
        1,
        500_000_000,
    )


def test_timeouts_and_body_buffer_follow_the_annotations() -> None:
    annotated = _canary(
        **{
            "seldon.io/rest-timeout": "2500",
            "seldon.io/grpc-timeout": "700",
            "seldon.io/grpc-max-message-size": str(64 * 2**20),
        }
    )
    routes = _routes(translate([annotated], {}, GATEWAY))
    grpc, rest = routes[4], routes[9]
    assert (grpc.route.timeout.seconds, grpc.route.timeout.nanos) == (0, 700_000_000)
    assert (rest.route.timeout.seconds, rest.route.timeout.nanos) == (2, 500_000_000)
    assert rest.request_body_buffer_limit.value == 64 * 2**20
    default = _routes(translate([_canary()], {}, GATEWAY))[9]
    # No annotation: no overall timeout (0 s turns off Envoy's default of 15 s), as in Seldon and Istio.
    assert default.route.HasField("timeout") and default.route.timeout.ToMilliseconds() == 0
    assert default.request_body_buffer_limit.value == DEFAULT_BUFFER_BYTES


def test_component_clusters_eject_outliers_budget_retries_and_size_windows() -> None:
    big = _canary(**{"seldon.io/grpc-max-message-size": str(512 * 2**20)})
    clusters = {
        c.name: c for c in translate([big], {}, GATEWAY).clusters if isinstance(c, cluster_pb2.Cluster)
    }
    grpc = clusters["default.ab.main.model.grpc"]
    assert grpc.outlier_detection.consecutive_5xx.value == 5
    assert grpc.outlier_detection.max_ejection_percent.value == 50
    (thresholds,) = grpc.circuit_breakers.thresholds
    assert thresholds.retry_budget.budget_percent.value == 20.0
    options = http_protocol_options_pb2.HttpProtocolOptions()
    grpc.typed_extension_protocol_options[options.DESCRIPTOR.full_name].Unpack(options)
    h2 = options.explicit_http_config.http2_protocol_options
    assert h2.initial_stream_window_size.value == 512 * 2**20
    assert h2.initial_connection_window_size.value == 512 * 2**20


def test_unreadable_annotations_fall_back_to_defaults() -> None:
    policy = policy_of(
        {"seldon.io/retries": "many", "seldon.io/rest-timeout": "soon", "seldon.io/retry-on": " "}
    )
    assert (policy.retries, policy.rest_timeout_ms) == (2, None)
    assert policy.retry_on == "connect-failure,refused-stream,unavailable,5xx"
