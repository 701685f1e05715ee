"""Scoped routes (SRDS): one small RouteConfiguration per deployment, chosen per request by a scope key.

With one RouteConfiguration for every deployment, each change makes Envoy re-parse all of it (60,000
routes at 10,000 deployments: seconds). Scoped, a change pushes only the changed deployment's
RouteConfiguration and its `ScopedRouteConfiguration`, and Envoy parses just that.

Envoy takes scope keys from request headers only, while a deployment is named by the REST path
(`/seldon/<ns>/<name>/...`) or by the gRPC headers `namespace` and `seldon`. So a Lua filter, first in the
chain, writes `SCOPE_HEADER: <ns>/<name>` (or `DEFAULT_SCOPE` for requests that name no deployment:
gRPC reflection, 404s) and clears the route cache; Envoy then re-selects the scope from the header
(ConnectionManagerImpl::ActiveStream::refreshCachedRoute). Every RouteConfiguration removes the header
before the request goes upstream. A key naming no deployment finds no scope, and Envoy answers 404,
which the listener's local-reply mappers shape like the default scope's catch-all.

Envoy builds the filter chain from the route it sees before any filter ran, and that is no route at all
here (the scope header is not set yet). So `disabled: true` filters could never be turned on per route:
in scoped mode the ext_proc filters are in the chain enabled but with a processing mode that sends
nothing, and the routes (or weighted clusters) that need one override its processing mode
(`ExtProcPerRoute.overrides`). A request that finds no route at all passes both untouched.
"""

from __future__ import annotations

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

# REST: the path names the deployment; gRPC: the `namespace` and `seldon` headers do (as the routes match).
SCOPE_SCRIPT = f"""
function envoy_on_request(handle)
  local headers = handle:headers()
  local namespace, name = string.match(headers:get(":path") or "", "^/seldon/([^/]+)/([^/?]+)/")
  if namespace == nil then
    local content_type = headers:get("content-type") or ""
    if string.sub(content_type, 1, 16) == "application/grpc" then
      namespace, name = headers:get("namespace"), headers:get("seldon")
    end
  end
  if namespace ~= nil and name ~= nil then
    headers:replace("{SCOPE_HEADER}", namespace .. "/" .. name)
  else
    headers:replace("{SCOPE_HEADER}", "{DEFAULT_SCOPE}")
  end
end
"""


def scope_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


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


def scoped_routes() -> hcm_pb2.ScopedRoutes:
    """The HCM's route specifier: scopes over ADS (SRDS), keyed by the whole `SCOPE_HEADER` value."""
    ads = config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )
    extractor = hcm_pb2.ScopedRoutes.ScopeKeyBuilder.FragmentBuilder.HeaderValueExtractor(
        name=SCOPE_HEADER, index=0
    )
    return hcm_pb2.ScopedRoutes(
        name=SCOPED_ROUTES_NAME,
        scope_key_builder=hcm_pb2.ScopedRoutes.ScopeKeyBuilder(
            fragments=[hcm_pb2.ScopedRoutes.ScopeKeyBuilder.FragmentBuilder(header_value_extractor=extractor)]
        ),
        rds_config_source=ads,
        scoped_rds=hcm_pb2.ScopedRds(scoped_rds_config_source=ads),
    )


def scope(name: str, key: str) -> scoped_route_pb2.ScopedRouteConfiguration:
    """A scope named like its RouteConfiguration, selected by `key`."""
    return scoped_route_pb2.ScopedRouteConfiguration(
        name=name,
        route_configuration_name=name,
        key=scoped_route_pb2.ScopedRouteConfiguration.Key(
            fragments=[scoped_route_pb2.ScopedRouteConfiguration.Key.Fragment(string_key=key)]
        ),
    )
