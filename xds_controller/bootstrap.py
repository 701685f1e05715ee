"""Envoy's bootstrap: admin on loopback or a Unix socket, one static cluster for our xDS server, everything
else over ADS.

Rendered from the bootstrap proto and converted to JSON, so Envoy's own schema (not hand-written dicts)
decides field names and `@type` URLs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, backoff_pb2, base_pb2, config_source_pb2, grpc_service_pb2
from envoy.config.metrics.v3 import stats_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import duration_pb2, json_format, struct_pb2

from xds_controller.admin import STATS_PATHS, admin_address, admin_cluster, stats_listener
from xds_controller.translate.clusters import static_cluster
from xds_controller.translate.model import Upstream
from xds_controller.translate.plan import Transport

XDS_CLUSTER = "seldon-mesh.xds"
# Envoy's OpenTelemetry tracer exports a batch every `flush_interval_ms` (default 5 s) or once
# `min_flush_spans` (default 5) spans are waiting; these are runtime keys, not tracer config fields.
TRACE_FLUSH_INTERVAL_KEY = "tracing.opentelemetry.flush_interval_ms"
TRACE_MIN_FLUSH_SPANS_KEY = "tracing.opentelemetry.min_flush_spans"
# Spans per export when traffic fills a batch before the interval ends. 1 (export each span as it ends)
# cost Envoy ~600 us of CPU per traced request (one OTLP call per span); 512 as the Python SDKs batch.
TRACE_MIN_FLUSH_SPANS = 512


def tracer_runtime(flush_interval_ms: int) -> dict[str, int]:
    """Runtime values exporting the gateway's spans at least every `flush_interval_ms`, in batches of
    `TRACE_MIN_FLUSH_SPANS` under load."""
    return {TRACE_FLUSH_INTERVAL_KEY: flush_interval_ms, TRACE_MIN_FLUSH_SPANS_KEY: TRACE_MIN_FLUSH_SPANS}


# The in-cluster gateway's stats: Envoy-wide, listener, HTTP and control-plane stats, and our own static
# clusters', but none per component cluster. At 10,000 SeldonDeployments (40,000 clusters) per-cluster
# stats were ~880 MB of Envoy's RSS and most of the time to apply the configuration (bench/xds_kube.py):
# per-predictor traffic is measured by the runtimes and extproc instead.
class StatsRegex(str):
    """A stats name pattern (RE2, whole name) among `stats_prefixes`, where a plain string is a prefix."""


# The connection managers' `http.<prefix>.` stats, except each RouteConfiguration's own
# `http.<prefix>.rds.<name>.*` (12 per scoped deployment: at 10,000 deployments ~7 KB and ~0.07 ms of
# Envoy CPU each, 70 MB and 0.7 s in all; measured with a bare Envoy 1.40). The HCM-wide `scoped_rds.`
# and the ADS stream's `control_plane.` stats still say whether configuration arrives.
HTTP_STATS_BUT_RDS = StatsRegex(r"http\.[^.]+\.([^r].*|r[^d].*|rd[^s].*|rds[^.].*)")

GATEWAY_STATS_PREFIXES: tuple[str, ...] = (
    "server.",
    "listener.",
    "listener_manager.",
    HTTP_STATS_BUT_RDS,
    "cluster_manager.",
    "control_plane.",
    "runtime.",
    "cluster.seldon-mesh.",
)


# Envoy re-opens a broken (or not yet accepted) ADS stream after a jittered back-off of
# ADS_RETRY_BASE_S doubling up to ADS_RETRY_MAX_S. Envoy's own default doubles from 0.5 s to 30 s: an
# Envoy started before its control plane (a gateway pod before the controller, or the controller
# restarted) then took up to 30 s more to connect (measured in bench/xds_kube at 10,000 deployments:
# ~30 s of its 42 s "full configuration applied" were both processes idle).
ADS_RETRY_BASE_S = 0.25
ADS_RETRY_MAX_S = 2.0


def _ads_retry() -> base_pb2.RetryPolicy:
    base, most = duration_pb2.Duration(), duration_pb2.Duration()
    base.FromMilliseconds(round(ADS_RETRY_BASE_S * 1000))
    most.FromMilliseconds(round(ADS_RETRY_MAX_S * 1000))
    backoff = backoff_pb2.BackoffStrategy(base_interval=base, max_interval=most)
    return base_pb2.RetryPolicy(retry_back_off=backoff)


def render_bootstrap(
    node_id: str,
    xds: Upstream,
    admin_port: int,
    cluster: str = "seldon-mesh",
    *,
    delta: bool = True,
    runtime: Mapping[str, int | float | str | bool] | None = None,
    stats_prefixes: Sequence[str] | None = None,
    admin_socket: str | None = None,
    stats_port: int | None = None,
    stats_host: str = "127.0.0.1",
    stats_paths: Sequence[str] = STATS_PATHS,
) -> dict[str, Any]:
    """Bootstrap JSON for an Envoy that takes all listeners, routes, clusters and endpoints over ADS.

    `admin_port` 0 lets Envoy pick one; start it with `--admin-address-path` to learn which. `delta`
    (the default) uses incremental ADS, so a change to one deployment sends only its resources; False
    uses state-of-the-world ADS, which resends every cluster on any cluster change. `runtime` values
    (e.g. `tracer_runtime(...)`) form a static runtime layer, under the admin layer. `stats_prefixes`
    limits the stats Envoy creates to those names (`GATEWAY_STATS_PREFIXES` for the in-cluster gateway);
    a `StatsRegex` among them matches whole names instead.
    `admin_socket` puts the admin API on that Unix socket (mode 0600) instead of `admin_port`, and with
    `stats_port` a listener there (on `stats_host`, loopback by default) serves only `stats_paths` of it
    (`admin.stats_listener`; the chart's gateway: every interface, `admin.POD_PATHS`).
    """
    api_type = (
        config_source_pb2.ApiConfigSource.DELTA_GRPC if delta else config_source_pb2.ApiConfigSource.GRPC
    )
    ads = config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )
    xds_cluster: cluster_pb2.Cluster = static_cluster(XDS_CLUSTER, Transport.GRPC, xds)
    bootstrap = bootstrap_pb2.Bootstrap(
        node=base_pb2.Node(id=node_id, cluster=cluster),
        admin=bootstrap_pb2.Admin(
            address=admin_address(admin_socket)
            if admin_socket is not None
            else address_pb2.Address(
                socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=admin_port)
            )
        ),
        static_resources=bootstrap_pb2.Bootstrap.StaticResources(clusters=[xds_cluster]),
        # Create a cluster's stats on first use, not with the cluster: at thousands of clusters, eager
        # stats make a CDS update take seconds (4,000 clusters: ~14 s eager, ~3 s deferred here).
        deferred_stat_options=bootstrap_pb2.Bootstrap.DeferredStatOptions(
            enable_deferred_creation_stats=True
        ),
        dynamic_resources=bootstrap_pb2.Bootstrap.DynamicResources(
            ads_config=config_source_pb2.ApiConfigSource(
                api_type=api_type,
                transport_api_version=config_source_pb2.V3,
                grpc_services=[
                    grpc_service_pb2.GrpcService(
                        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
                            cluster_name=XDS_CLUSTER, retry_policy=_ads_retry()
                        )
                    )
                ],
                set_node_on_first_message_only=True,
            ),
            lds_config=ads,
            cds_config=ads,
        ),
    )
    if admin_socket is not None and stats_port is not None:
        bootstrap.static_resources.clusters.append(admin_cluster(admin_socket))
        bootstrap.static_resources.listeners.append(stats_listener(stats_host, stats_port, stats_paths))
    if stats_prefixes is not None:  # only the stats named by these prefixes are created
        patterns = [
            string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=str(prefix)))
            if isinstance(prefix, StatsRegex)
            else string_pb2.StringMatcher(prefix=prefix)
            for prefix in stats_prefixes
        ]
        bootstrap.stats_config.CopyFrom(
            stats_pb2.StatsConfig(
                stats_matcher=stats_pb2.StatsMatcher(
                    inclusion_list=string_pb2.ListStringMatcher(patterns=patterns)
                )
            )
        )
    if runtime:
        static = struct_pb2.Struct()
        static.update(dict(runtime))
        bootstrap.layered_runtime.CopyFrom(
            bootstrap_pb2.LayeredRuntime(
                layers=[
                    bootstrap_pb2.RuntimeLayer(name="static", static_layer=static),
                    bootstrap_pb2.RuntimeLayer(
                        name="admin", admin_layer=bootstrap_pb2.RuntimeLayer.AdminLayer()
                    ),
                ]
            )
        )
    rendered: dict[str, Any] = json_format.MessageToDict(bootstrap, preserving_proto_field_name=True)
    return rendered
