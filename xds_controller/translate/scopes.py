"""Scoped routes (SRDS): one small RouteConfiguration per deployment, chosen per request by a scope key.

With one RouteConfiguration for every deployment, each change makes Envoy re-parse all of it (60,000
routes at 10,000 deployments: seconds). Scoped, a change pushes only the changed deployment's
RouteConfiguration and its `ScopedRouteConfiguration`, and Envoy parses just that.

A scope key has two fragments, namespace and name. The listener serves two connection managers, chosen
per connection by the `http_inspector` listener filter (see `listener`):
- HTTP/1.x connections (REST only: gRPC needs HTTP/2) take the fragments natively from `:path`, elements
  2 and 3 when split at `/` (`/seldon/<ns>/<name>/...`; `path_scoped_routes`). The scope, hence the
  route, is known before any filter runs, so the ext_proc filters are `disabled: true` and only the
  routes that need them turn them on: a single-model request passes no filter but the router.
- Other connections (h2c: gRPC, and REST over HTTP/2) name the deployment by the path or by the gRPC
  headers `namespace` and `seldon`, which one header extractor cannot choose between. A Lua filter,
  first in the chain, writes `SCOPE_HEADER: <ns>/<name>` (or `DEFAULT_SCOPE` in both fragments for
  requests that name no deployment: gRPC reflection, 404s) and clears the route cache; Envoy then
  re-selects the scope from the header (ConnectionManagerImpl::ActiveStream::refreshCachedRoute;
  `header_scoped_routes`).
Every RouteConfiguration removes the header before the request goes upstream. A key naming no deployment
(or a path with fewer than four elements) finds no scope, and Envoy answers 404, which the listener's
local-reply mappers shape like the default scope's catch-all. The scope only preselects: the routes in
it still match the whole path prefix or the exact gRPC headers.

Measured (scratch Envoy copies of the gateway, one HTTP/1.1 client at a time, 2 shared cores, quiet
machine): the Lua filter with its second route selection cost ~28 us of Envoy CPU and ~0.025 ms p50 per
request, the two enabled-but-skipping ext_proc filters ~25 us and ~0.025 ms. An Envoy with nothing but a
router adds ~0.26-0.28 ms p50 over calling the runtime directly (~230-250 us of Envoy CPU per request);
the gateway went from +0.35 to ~+0.29-0.30 ms.

On the h2c manager Envoy builds the filter chain from the route it sees before any filter ran, and that
is no route at all (the scope header is not set yet). So `disabled: true` filters could never be turned
on per route there: its ext_proc filters are in the chain enabled but with a processing mode that sends
nothing, and the routes (or weighted clusters) that need one override its processing mode
(`ExtProcPerRoute.overrides`). A request that finds no route at all passes both untouched.
"""

from __future__ import annotations

from typing import TypeAlias

from envoy.config.core.v3 import config_source_pb2
from envoy.config.route.v3 import scoped_route_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import any_pb2, wrappers_pb2

SCOPE_HEADER = "x-seldon-scope"
SCOPED_ROUTES_NAME = "seldon-gateway"
DEFAULT_SCOPE = "-"  # not a valid namespace or name, so no deployment's key
DEFAULT_ROUTE_CONFIG = "seldon-gateway.default"
LUA_FILTER = "envoy.filters.http.lua"

# The gRPC services a deployment answers (v1 constants.go plus reflection and health): a service's full
# name starts with one of them and a dot.
GRPC_SERVICE_PREFIXES = ("seldon.protos", "tensorflow.serving", "inference", "grpc.reflection", "grpc.health")
_LUA_PREFIXES = ", ".join(f'"{prefix}."' for prefix in GRPC_SERVICE_PREFIXES)

# REST: the path names the deployment; gRPC: the `namespace` and `seldon` headers do (as the routes match),
# for a call of a service a deployment answers (`/<service>/<method>`, the service under one of the
# prefixes): any other gRPC call gets the default scope, whose catch-all answers it as a deployment's
# would, so a deployment's gRPC routes need not match the path again (`routes.deployment_routes`).
SCOPE_SCRIPT = f"""
local grpc_prefixes = {{{_LUA_PREFIXES}}}

local function answered(path)
  local service = string.match(path, "^/([^/]+)/[^/]+$")
  if service == nil then
    return false
  end
  for _, prefix in ipairs(grpc_prefixes) do
    if #service > #prefix and string.sub(service, 1, #prefix) == prefix then
      return true
    end
  end
  return false
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local path = headers:get(":path") or ""
  local namespace, name = string.match(path, "^/seldon/([^/]+)/([^/?]+)/")
  if namespace == nil then
    local content_type = headers:get("content-type") or ""
    if string.sub(content_type, 1, 16) == "application/grpc" and answered(path) then
      namespace, name = headers:get("namespace"), headers:get("seldon")
    end
  end
  if namespace ~= nil and name ~= nil then
    headers:replace("{SCOPE_HEADER}", namespace .. "/" .. name)
  else
    headers:replace("{SCOPE_HEADER}", "{DEFAULT_SCOPE}/{DEFAULT_SCOPE}")
  end
end
"""


def scope_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _fragments(key: str) -> tuple[str, str]:
    """A key's two fragments: `<ns>/<name>`, or `DEFAULT_SCOPE` in both."""
    namespace, _, name = key.partition("/")
    return (namespace, name) if name else (key, key)


def route_config_name(namespace: str, name: str) -> str:
    """The RouteConfiguration (and scope) of one deployment."""
    return f"seldon-gateway/{namespace}/{name}"


def scope_filter() -> hcm_pb2.HttpFilter:
    """The Lua filter writing the scope header; changing headers clears the route cache (the default)."""
    lua = lua_pb2.Lua(
        default_source_code={"inline_string": SCOPE_SCRIPT},
        clear_route_cache=wrappers_pb2.BoolValue(value=True),
    )
    packed = any_pb2.Any()
    packed.Pack(lua, deterministic=True)
    return hcm_pb2.HttpFilter(name=LUA_FILTER, typed_config=packed)


_Extractor: TypeAlias = hcm_pb2.ScopedRoutes.ScopeKeyBuilder.FragmentBuilder.HeaderValueExtractor


def _scoped_routes(extractors: tuple[_Extractor, _Extractor]) -> hcm_pb2.ScopedRoutes:
    """The HCM's route specifier: scopes over ADS (SRDS), keyed by (namespace, name) from `extractors`."""
    ads = config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )
    fragments = [
        hcm_pb2.ScopedRoutes.ScopeKeyBuilder.FragmentBuilder(header_value_extractor=extractor)
        for extractor in extractors
    ]
    return hcm_pb2.ScopedRoutes(
        name=SCOPED_ROUTES_NAME,
        scope_key_builder=hcm_pb2.ScopedRoutes.ScopeKeyBuilder(fragments=fragments),
        rds_config_source=ads,
        scoped_rds=hcm_pb2.ScopedRds(scoped_rds_config_source=ads),
    )


def header_scoped_routes() -> hcm_pb2.ScopedRoutes:
    """Scopes keyed by the `SCOPE_HEADER` the Lua filter writes (`scope_filter`)."""
    return _scoped_routes(
        (
            _Extractor(name=SCOPE_HEADER, element_separator="/", index=0),
            _Extractor(name=SCOPE_HEADER, element_separator="/", index=1),
        )
    )


def path_scoped_routes() -> hcm_pb2.ScopedRoutes:
    """Scopes keyed by the REST path itself, `/seldon/<ns>/<name>/...`: no filter needed."""
    return _scoped_routes(
        (
            _Extractor(name=":path", element_separator="/", index=2),
            _Extractor(name=":path", element_separator="/", index=3),
        )
    )


def scope(name: str, key: str, on_demand: bool = False) -> scoped_route_pb2.ScopedRouteConfiguration:
    """A scope named like its RouteConfiguration, selected by `key` (`scope_key`, or `DEFAULT_SCOPE`);
    `on_demand`: Envoy fetches the RouteConfiguration when a request first selects the scope (with the
    on_demand filter in the chain: `on_demand.routes_on_demand`)."""
    return scoped_route_pb2.ScopedRouteConfiguration(
        name=name,
        on_demand=on_demand,
        route_configuration_name=name,
        key=scoped_route_pb2.ScopedRouteConfiguration.Key(
            fragments=[
                scoped_route_pb2.ScopedRouteConfiguration.Key.Fragment(string_key=fragment)
                for fragment in _fragments(key)
            ]
        ),
    )
