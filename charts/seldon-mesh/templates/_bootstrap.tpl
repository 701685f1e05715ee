{{/* The gateway Envoy's bootstrap: what xds_controller.bootstrap.render_bootstrap makes for node
seldon-mesh-gateway (cluster seldon-mesh-gateway), delta ADS to <fullname>-xds.<namespace>.svc, admin on a
Unix socket of mode 0600 in an emptyDir (no TCP admin: /config_dump, /quitquitquit and the rest are not
reachable from the pod network), a static listener on gateway.envoy.statsPort that serves only GET /ready
(the readiness probe) and GET /stats/prometheus (Prometheus) from it and 404 for anything else (as
xds_controller.admin.stats_listener), the xDS cluster STRICT_DNS (its address is a Service's DNS name), and only the stats of
GATEWAY_STATS_PREFIXES (no per-cluster stats: at 10,000 deployments they were ~880 MB of Envoy's memory;
nor each RouteConfiguration's rds.<name>. ones, ~70 MB).
tests/charts checks the two agree. */}}
{{- define "seldon-mesh.gatewayBootstrap" -}}
{{- $xds := printf "%s-xds.%s.svc" (include "seldon-mesh.fullname" .) .Release.Namespace -}}
{{- $admin := dict "pipe" (dict "path" "/var/run/envoy/admin.sock" "mode" 384) | toJson -}}
{{- $get := dict "name" ":method" "string_match" (dict "exact" "GET") -}}
{
  "node": {"id": "seldon-mesh-gateway", "cluster": "seldon-mesh-gateway"},
  "static_resources": {
    "clusters": [
      {
        "name": "seldon-mesh.xds",
        "type": "STRICT_DNS",
        "connect_timeout": "1s",
        "circuit_breakers": {
          "thresholds": [
            {
              "max_connections": 1024,
              "max_pending_requests": 1024,
              "max_requests": 1024,
              "retry_budget": {"budget_percent": {"value": 20.0}, "min_retry_concurrency": 8}
            }
          ]
        },
        "load_assignment": {
          "cluster_name": "seldon-mesh.xds",
          "endpoints": [
            {
              "lb_endpoints": [
                {
                  "endpoint": {
                    "address": {
                      "socket_address": {"address": {{ $xds | quote }}, "port_value": {{ .Values.gateway.controller.xdsPort }}}
                    }
                  }
                }
              ]
            }
          ]
        },
        "typed_extension_protocol_options": {
          "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "common_http_protocol_options": {"idle_timeout": "60s"},
            "explicit_http_config": {
              "http2_protocol_options": {
                "initial_stream_window_size": 268435456,
                "initial_connection_window_size": 268435456
              }
            }
          }
        }
      },
      {
        "name": "seldon-mesh.admin",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
          "cluster_name": "seldon-mesh.admin",
          "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {{ $admin }}}}]}]
        }
      }
    ],
    "listeners": [
      {
        "name": "seldon-mesh.stats",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": {{ .Values.gateway.envoy.statsPort }}}},
        "filter_chains": [
          {
            "filters": [
              {
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                  "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                  "stat_prefix": "seldon_mesh_stats",
                  "route_config": {
                    "name": "seldon-mesh.stats",
                    "virtual_hosts": [
                      {
                        "name": "stats",
                        "domains": ["*"],
                        "routes": [
                          {"match": {"path": "/ready", "headers": [{{ toJson $get }}]}, "route": {"cluster": "seldon-mesh.admin"}},
                          {"match": {"path": "/stats/prometheus", "headers": [{{ toJson $get }}]}, "route": {"cluster": "seldon-mesh.admin"}},
                          {
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 404, "body": {"inline_string": "only GET /ready and /stats/prometheus\n"}}
                          }
                        ]
                      }
                    ]
                  },
                  "http_filters": [
                    {
                      "name": "envoy.filters.http.router",
                      "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                    }
                  ]
                }
              }
            ]
          }
        ]
      }
    ]
  },
  "dynamic_resources": {
    "lds_config": {"ads": {}, "resource_api_version": "V3"},
    "cds_config": {"ads": {}, "resource_api_version": "V3"},
    "ads_config": {
      "api_type": "DELTA_GRPC",
      "grpc_services": [
        {
          "envoy_grpc": {
            "cluster_name": "seldon-mesh.xds",
            "retry_policy": {"retry_back_off": {"base_interval": "0.250s", "max_interval": "2s"}}
          }
        }
      ],
      "set_node_on_first_message_only": true,
      "transport_api_version": "V3"
    }
  },
  "admin": {"address": {{ $admin }}},
  "stats_config": {
    "stats_matcher": {
      "inclusion_list": {
        "patterns": [
          {"prefix": "server."}, {"prefix": "listener."}, {"prefix": "listener_manager."},
          {"safe_regex": {"regex": "http\\.[^.]+\\.([^r].*|r[^d].*|rd[^s].*|rds[^.].*)"}},
          {"prefix": "cluster_manager."}, {"prefix": "control_plane."}, {"prefix": "runtime."},
          {"prefix": "cluster.seldon-mesh."}
        ]
      }
    }
  },
  "deferred_stat_options": {"enable_deferred_creation_stats": true}
}
{{- end -}}
