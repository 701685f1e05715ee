"""The xDS control plane: SeldonDeployments -> Envoy resources -> versioned snapshots -> ADS.

Layers, each importing only the ones after it:
- `translate` (pure spec + endpoints -> Listener/RouteConfiguration/Cluster/ClusterLoadAssignment protos),
  `bootstrap` (Envoy's startup config);
- `snapshot` (immutable, content-versioned resource sets), `references` (what names what);
- `cache` (snapshot per node, watches, ACK/NACK status);
- `sotw` + `server` (the ADS gRPC server) and `callbacks` (its hooks);
- `resource_types` (type URLs and push order), used by all of them.
"""
