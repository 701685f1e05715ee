"""The ext_proc wiring of the gateway: the filter (disabled by default), per-route enabling, its cluster.

Graph predictors are served by extproc (see extproc/server/processor.py). With
`GatewaySettings.extproc_rest` set (`seldon-mesh up`'s default graph edge, `http`), REST graph routes go to
extproc's REST edge as an ordinary upstream instead (routes.py); the graph filter described here serves
`--graph-edge ext_proc` and `ext_proc-http`, and the observe filter payload logging. The HCM carries one
`envoy.filters.http.ext_proc` filter, `disabled: true`, so single-model routes never touch it. A graph
route enables it with a `FilterConfig` wrapping `ExtProcPerRoute` overrides whose `grpc_initial_metadata`
names the predictor; for a canary the override sits on the graph predictor's weighted cluster.
Request headers SEND and request body FULL_DUPLEX_STREAMED: Envoy sends headers and body without
waiting for answers, extproc joins the body and answers once, with an ImmediateResponse (one message
pair and one Envoy <-> extproc round trip fewer than BUFFERED; it also enforces the body limit, which
Envoy no longer buffers against). Measured and not taken: headers SKIP with the facts as
`request_attributes` (one message each way) -- Envoy's router then starts the upstream request to
extproc's gRPC port before the body is processed, and a GET (no body) never reaches ext_proc at all.
If extproc is down, `failure_mode_allow: false` and `status_on_error:
EXTPROC_ERROR_STATUS` make the request fail at once; Envoy sets no response flag for that, so the status
is one nothing else in the gateway uses, and the listener's local-reply mappers turn it into a 503 in
Seldon JSON that says extproc is unavailable (gRPC: UNAVAILABLE);
replies extproc produced itself carry dynamic metadata (`GRAPH_REPLY_NAMESPACE`) so the mappers leave
their bodies alone. gRPC graph requests cannot be answered that way (an ImmediateResponse has no gRPC
body plus trailers), so their route goes to the same extproc process as an ordinary gRPC upstream.

Single-model predictors with a payload `logger` are logged by a second ext_proc filter, `OBSERVE_FILTER`,
also disabled by default, in observability mode: Envoy sends extproc copies of the request and response
and never waits for an answer, so logging adds no latency and, with `failure_mode_allow`, never fails a
request. Bodies are STREAMED: in observability mode Envoy sends no body at all in BUFFERED mode
("Wrong body mode for observability mode, no data is sent", ext_proc.cc), so extproc receives each body
as one or more chunks and joins them up to the chunk with `end_of_stream`. Their routes enable it with
metadata naming the predictor plus `OBSERVE_KEY: 1`. Graph routes keep the first filter: extproc logs
graph nodes itself.

An HTTP/1.1 exchange makes 6 messages (headers, body, an empty end-of-stream chunk, each way). Measured
and not taken: headers SKIP with the facts as filter-level `request_attributes`/`response_attributes`
(CEL, e.g. `request.headers['x-envoy-original-path']`; per-route override attributes arrived empty on
1.40, response headers are not readable as attributes when skipped, only `response.code`) gives 4
messages; extproc only draining the stream took 1,354 -> 1,108 us of CPU per request (request headers
SKIP alone: 1,477; one noisy run). But with headers SKIP and a STREAMED body Envoy drops
`content-length` (seen on the request; ext_proc's `shouldRemoveContentLength` does the same to the
response), so the runtime gets a chunked request and the client a chunked response: not taken.

`seldon-mesh up --graph-edge ext_proc-http` (`GatewaySettings.extproc_http`): the filter's `http_service`
transport (a work-in-progress API; Envoy warns at load), as tried on 1.40. Envoy POSTs each
ProcessingRequest as JSON (bytes base64) to `http_uri` with `x-request-id: <stream id>` and parses a 200's
JSON body as the ProcessingResponse. What holds: a filter-level processing mode that sends any body or
trailers is rejected at load ("...configured with http_service instead of gRPC service, then the processing
modes of this filter can not be configured to send body or trailer"); a per-route `ExtProcPerRoute` override
is not checked and does send the body. Only the first message of a stream gets its answer applied: with
headers SEND + body BUFFERED the body's POST is made and answered, but Envoy never acts on the answer and
the request ends in the `message_timeout` 504. Headers SKIP + body BUFFERED works: one POST carrying the
body and the filter-level `request_attributes` (`request.path`, `request.method`, `request.id`,
`xds.route_name`; `xds.route_metadata` as text-format proto; `request.headers` whole only as "CelMap value";
override-level attributes arrive empty), answered by an `immediate_response`; a GET (no body) then never
reaches the filter. There is no stream metadata (`grpc_initial_metadata` does not apply), so the predictor
would have to come from the route (name or metadata), which a weighted cluster cannot give. An unreachable
server gives `status_on_error` (fail closed). Measured with trivial Python servers (uvloop + httptools,
grpc.aio) answering at once, concurrency 1, 5 x 400 interleaved, best p50, load ~2-4: Envoy -> plain HTTP
hop 0.617 ms, ext_proc `http_service` 0.798 ms (+0.18), ext_proc gRPC 1.376 ms (+0.76). So the transport is
much cheaper than gRPC, but only body-only: the graph routes are those of `--graph-edge http` (REST edge
upstream, which serves GETs and splits), and the non-split ones also enable the filter with
`HTTP_GRAPH_MODE` (`enable_extproc_http`); extproc takes the predictor from a pinned route's name
(`xds.route_name`). With headers SKIP the router has already run when the body is sent: the path is
rewritten (hence `x-envoy-original-path`) and the upstream request to the REST edge started, which the
immediate response then resets (a new HTTP/1.1 connection per request; the bench chain measured +2.31 ms
added p50 so, +1.20 via the REST edge alone, same run); so on the HTTP/1.x chain those routes also enable
`GRAPH_BUFFER_FILTER`, which holds the request back from the router until the body is in (HTTP/2 clients,
whose chain is scoped by Lua, still pay the reset).
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2, grpc_service_pb2, http_service_pb2, http_uri_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.buffer.v3 import buffer_pb2
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2, processing_mode_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import http_status_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

EXTPROC_FILTER = "envoy.filters.http.ext_proc"
EXTPROC_FILTER_KEY = EXTPROC_FILTER  # its key in typed_per_filter_config
EXTPROC_CLUSTER = "seldon-mesh.extproc"
# extproc's REST edge (HTTP/1.1): with `GatewaySettings.extproc_rest`, REST graph routes go there.
EXTPROC_REST_CLUSTER = "seldon-mesh.extproc-rest"
# The graph filter's reply when it cannot reach extproc (508 Loop Detected: never sent otherwise here),
# mapped by the listener to a 503 that names extproc.
EXTPROC_ERROR_STATUS = 508
# Metadata on the ext_proc stream (REST) and request header to the gRPC upstream: the predictor served.
PREDICTOR_KEY = "x-seldon-predictor"
# extproc marks its own replies with {GRAPH_REPLY_NAMESPACE: {GRAPH_REPLY_KEY: true}} dynamic metadata.
GRAPH_REPLY_NAMESPACE = "seldon_mesh.graph"
GRAPH_REPLY_KEY = "reply"
# A whole graph (every node call, each bounded by its own timeout in extproc) must answer within this;
# Envoy's default of 200 ms per ext_proc message is far too short for a graph of real models.
MESSAGE_TIMEOUT_S = 300
# `seldon-mesh up --graph-edge ext_proc-http`: the graph filter POSTs its one message (the request body and
# `HTTP_ATTRIBUTES`) as JSON to this path of extproc's REST edge (see extproc/server/extproc_http.py).
EXTPROC_HTTP_PATH = "/ext_proc"
HTTP_ATTRIBUTES = (
    "request.path",
    # with headers SKIP the router has already rewritten the path (and started the upstream request)
    "request.headers['x-envoy-original-path']",
    "request.method",
    "request.id",
    "request.headers['seldon-puid']",
    "xds.route_name",  # a pinned route's name names its predictor (`routes._route_name`)
    "request.headers['traceparent']",
)
# With `http_service`, the graph routes also enable this buffer filter (after both ext_proc filters, before
# the router): with request headers SKIP the router would otherwise start the upstream request to the REST
# edge before the body reaches ext_proc, and the immediate response then resets it (HTTP/1.1: a new
# connection per request, seen in the REST edge cluster's `upstream_cx_destroy_with_active_rq`).
GRAPH_BUFFER_FILTER = "seldon.extproc.buffer"
# Its own limit when a route names none (routes set theirs, the route's body buffer limit).
GRAPH_BUFFER_BYTES = 4 * 2**20
# The observability-mode filter for single-model payload logging, and the stream metadata that says so.
OBSERVE_FILTER = "seldon.extproc.observe"
OBSERVE_KEY = "x-seldon-observe"
# Its Envoy stats are `http.<hcm>.ext_proc.observe.*`, apart from the graph filter's.
OBSERVE_STAT_PREFIX = "observe"
# How long Envoy keeps an observability stream open after the request ends, so extproc can still read
# the last (response body) message: a few seconds, more than a local extproc ever needs.
OBSERVE_CLOSE_TIMEOUT_S = 5
# The only headers the observe filter forwards (`forward_rules`): what extproc's exchange log reads
# (extproc/server/exchanges.py `OBSERVED_REQUEST_HEADERS` | `OBSERVED_RESPONSE_HEADERS`, equal in the tests).
# The others (a dozen per client request, the runtime's response headers) were serialized by Envoy and
# parsed by extproc for nothing.
OBSERVED_HEADERS = (
    ":path", ":method", ":status", "content-type", "content-length", "content-encoding",
    "grpc-encoding", "grpc-status", "namespace", "seldon", "seldon-puid", "seldon-skip-logging",
    "x-request-id",
)  # fmt: skip

_MODE = processing_mode_pb2.ProcessingMode


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    return packed


# What the graph filter sends extproc, and what the observe filter copies to it.
GRAPH_MODE = _MODE(
    request_header_mode=_MODE.SEND,
    response_header_mode=_MODE.SKIP,
    request_body_mode=_MODE.FULL_DUPLEX_STREAMED,
    response_body_mode=_MODE.NONE,
    request_trailer_mode=_MODE.SEND,  # Envoy requires it with a full-duplex body
    response_trailer_mode=_MODE.SKIP,
)
OBSERVE_MODE = _MODE(
    request_header_mode=_MODE.SEND,
    response_header_mode=_MODE.SEND,
    request_body_mode=_MODE.STREAMED,
    response_body_mode=_MODE.STREAMED,
    request_trailer_mode=_MODE.SKIP,
    response_trailer_mode=_MODE.SKIP,
)
# What the graph filter sends over `http_service` (per route: a filter-level mode sending a body is
# rejected at load): the body only, buffered by Envoy, so the whole exchange is one POST.
HTTP_GRAPH_MODE = _MODE(
    request_header_mode=_MODE.SKIP,
    response_header_mode=_MODE.SKIP,
    request_body_mode=_MODE.BUFFERED,
    response_body_mode=_MODE.NONE,
    request_trailer_mode=_MODE.SKIP,
    response_trailer_mode=_MODE.SKIP,
)
# A scoped gateway's filters send nothing unless a route's override says what (see `scopes`): a request
# that finds no route (a scope naming no deployment) then passes both filters untouched.
SKIP_MODE = _MODE(
    request_header_mode=_MODE.SKIP,
    response_header_mode=_MODE.SKIP,
    request_body_mode=_MODE.NONE,
    response_body_mode=_MODE.NONE,
    request_trailer_mode=_MODE.SKIP,
    response_trailer_mode=_MODE.SKIP,
)


def extproc_filter(scoped: bool = False, http: bool = False) -> hcm_pb2.HttpFilter:
    """Disabled by default; scoped (the chain is built before the route is known), enabled but sending
    nothing unless a route's `ExtProcPerRoute` overrides the processing mode. `http`: over `http_service`
    to extproc's REST edge, each route saying `HTTP_GRAPH_MODE` (`enable_extproc_http`)."""
    config = ext_proc_pb2.ExternalProcessor(
        failure_mode_allow=False,
        processing_mode=SKIP_MODE if scoped or http else GRAPH_MODE,
        message_timeout=duration_pb2.Duration(seconds=MESSAGE_TIMEOUT_S),
        status_on_error=http_status_pb2.HttpStatus(code=EXTPROC_ERROR_STATUS),
        metadata_options=ext_proc_pb2.MetadataOptions(
            receiving_namespaces=ext_proc_pb2.MetadataOptions.MetadataNamespaces(
                untyped=[GRAPH_REPLY_NAMESPACE]
            )
        ),
    )
    if http:
        uri = http_uri_pb2.HttpUri(
            uri=f"http://extproc{EXTPROC_HTTP_PATH}",
            cluster=EXTPROC_REST_CLUSTER,
            timeout=duration_pb2.Duration(seconds=MESSAGE_TIMEOUT_S),
        )
        config.http_service.http_service.CopyFrom(http_service_pb2.HttpService(http_uri=uri))
        config.request_attributes.extend(HTTP_ATTRIBUTES)
    else:
        config.grpc_service.envoy_grpc.cluster_name = EXTPROC_CLUSTER
    return hcm_pb2.HttpFilter(name=EXTPROC_FILTER, typed_config=_packed(config), disabled=not scoped)


def observe_filter(scoped: bool = False) -> hcm_pb2.HttpFilter:
    """Copies of request and response to extproc for payload logging: asynchronous, never failing.
    Disabled by default, or (scoped) enabled and sending nothing, like `extproc_filter`."""
    config = ext_proc_pb2.ExternalProcessor(
        grpc_service=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=EXTPROC_CLUSTER)
        ),
        failure_mode_allow=True,  # logging must never fail a request
        observability_mode=True,
        stat_prefix=OBSERVE_STAT_PREFIX,
        processing_mode=SKIP_MODE if scoped else OBSERVE_MODE,
        deferred_close_timeout=duration_pb2.Duration(seconds=OBSERVE_CLOSE_TIMEOUT_S),
        forward_rules=ext_proc_pb2.HeaderForwardingRules(
            allowed_headers=string_pb2.ListStringMatcher(
                patterns=[string_pb2.StringMatcher(exact=name) for name in OBSERVED_HEADERS]
            )
        ),
    )
    return hcm_pb2.HttpFilter(name=OBSERVE_FILTER, typed_config=_packed(config), disabled=not scoped)


def observe_per_route(predictor: str | None) -> any_pb2.Any:
    """`ExtProcPerRoute` for the observe filter: log as `predictor`, or not at all (None)."""
    if predictor is None:
        return _packed(ext_proc_pb2.ExtProcPerRoute(disabled=True))
    overrides = ext_proc_pb2.ExtProcOverrides(
        processing_mode=OBSERVE_MODE,
        grpc_initial_metadata=[
            base_pb2.HeaderValue(key=PREDICTOR_KEY, value=predictor),
            base_pb2.HeaderValue(key=OBSERVE_KEY, value="1"),
        ],
    )
    return _packed(ext_proc_pb2.ExtProcPerRoute(overrides=overrides))


def enable_observe(predictor: str | None) -> any_pb2.Any:
    """The route's `typed_per_filter_config[OBSERVE_FILTER]` entry that turns payload logging on.

    With `predictor` None (a split) it only enables; each weighted cluster then names its predictor or
    turns logging off (`observe_per_route`).
    """
    inner = (
        observe_per_route(predictor)
        if predictor is not None
        else _packed(ext_proc_pb2.ExtProcPerRoute(overrides=ext_proc_pb2.ExtProcOverrides()))
    )
    return _packed(route_components_pb2.FilterConfig(config=inner))


def extproc_per_route(predictor: str | None) -> any_pb2.Any:
    """`ExtProcPerRoute` naming the graph predictor to run, or turning ext_proc off (None)."""
    if predictor is None:
        return _packed(ext_proc_pb2.ExtProcPerRoute(disabled=True))
    overrides = ext_proc_pb2.ExtProcOverrides(
        processing_mode=GRAPH_MODE,
        grpc_initial_metadata=[base_pb2.HeaderValue(key=PREDICTOR_KEY, value=predictor)],
    )
    return _packed(ext_proc_pb2.ExtProcPerRoute(overrides=overrides))


def enable_extproc(predictor: str | None) -> any_pb2.Any:
    """The route's `typed_per_filter_config` entry that turns the disabled-by-default filter on.

    With `predictor` None (a split) it only enables; each weighted cluster then says what to do.
    """
    inner = (
        extproc_per_route(predictor)
        if predictor is not None
        else _packed(ext_proc_pb2.ExtProcPerRoute(overrides=ext_proc_pb2.ExtProcOverrides()))
    )
    return _packed(route_components_pb2.FilterConfig(config=inner))


def enable_extproc_http() -> any_pb2.Any:
    """With `extproc_filter(http=True)`: the route's entry that makes the graph filter POST the buffered
    body to extproc, which answers it (a request without a body goes on to the route's upstream)."""
    overrides = ext_proc_pb2.ExtProcOverrides(processing_mode=HTTP_GRAPH_MODE)
    inner = _packed(ext_proc_pb2.ExtProcPerRoute(overrides=overrides))
    return _packed(route_components_pb2.FilterConfig(config=inner))


def graph_buffer_filter() -> hcm_pb2.HttpFilter:
    """Disabled by default; `enable_graph_buffer` on a route holds its request back from the router until
    the body is in, so a graph the ext_proc filter answers from the body never opens an upstream request."""
    config = buffer_pb2.Buffer()
    config.max_request_bytes.value = GRAPH_BUFFER_BYTES
    return hcm_pb2.HttpFilter(name=GRAPH_BUFFER_FILTER, typed_config=_packed(config), disabled=True)


def enable_graph_buffer(max_bytes: int) -> any_pb2.Any:
    """The route's `typed_per_filter_config[GRAPH_BUFFER_FILTER]` entry (`graph_buffer_filter`)."""
    per_route = buffer_pb2.BufferPerRoute()
    per_route.buffer.max_request_bytes.value = max_bytes or GRAPH_BUFFER_BYTES
    return _packed(route_components_pb2.FilterConfig(config=_packed(per_route)))


def predictor_header(predictor: str) -> base_pb2.HeaderValueOption:
    """The request header that tells the gRPC upstream in extproc which predictor to run."""
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=PREDICTOR_KEY, value=predictor),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )
