"""The xDS control plane: SeldonDeployments -> Envoy resources -> versioned snapshots -> ADS.

Layers, each importing only the ones after it:
- `translate` (pure spec + endpoints -> Listener/RouteConfiguration/Cluster/ClusterLoadAssignment protos,
  traffic policy from annotations), `bootstrap` (Envoy's startup config, delta ADS by default);
- `builder` (snapshots at scale: re-renders only the deployments that changed);
- `snapshot` (immutable resource sets with per-resource and per-type content versions), `references`
  (what names what);
- `cache` (snapshot per node, watches, ACK/NACK status, rejected versions);
- `sequencing` (make before break: the next step towards a snapshot, given what Envoy applied);
- `sotw` and `delta` (per-stream protocol bookkeeping) + `server` (the ADS gRPC server for both) and
  `callbacks` (its hooks);
- `resource_types` (type URLs and push order), used by all of them.
"""
