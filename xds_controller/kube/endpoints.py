"""EndpointSlices -> where a predictor Service's ready pods listen (`ComponentEndpoints`).

A Service's endpoints are spread over several EndpointSlices (label `kubernetes.io/service-name`). Each
slice lists pods' addresses with conditions and the Service's ports by name; the gateway uses port `http`
(the Service's 8000, REST) and `grpc` (5001), at the pod's target port the slice gives.

Readiness, as kube-proxy reads it (KEP-1669):
- `conditions.ready` false (or absent: true) -> not an endpoint: a pod starting, failing its readiness
  probe, or terminating;
- when a Service has no ready endpoint at all, its `serving` and `terminating` ones are used, so a
  Deployment rolling its last pods still answers while the new ones start.
A terminating pod leaves the assignment as soon as its slice says so; Envoy stops sending it new
requests when it applies the update and lets the ones in flight finish on their connections (a host
removed by EDS is drained, not reset). The pod keeps serving through its `preStop`/grace period meanwhile.

Pure: raw slice dicts in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from xds_controller.translate import ComponentEndpoints, Upstream

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HTTP_PORT_NAME = "http"
GRPC_PORT_NAME = "grpc"
_IP_ADDRESS_TYPES = ("IPv4", "IPv6")


class SliceEndpoints(NamedTuple):
    """One EndpointSlice, reduced to what routing needs: its Service and its addresses per state."""

    service: str
    http_port: int | None
    grpc_port: int | None
    ready: tuple[str, ...]
    serving_terminating: tuple[str, ...]


def service_of(raw: Mapping[str, Any]) -> str | None:
    labels = (raw.get("metadata") or {}).get("labels") or {}
    name = labels.get(SERVICE_NAME_LABEL)
    return name if isinstance(name, str) and name else None


def parse_slice(raw: Mapping[str, Any]) -> SliceEndpoints | None:
    """None for a slice the gateway cannot use (no Service label, FQDN addresses)."""
    service = service_of(raw)
    if service is None or raw.get("addressType", "IPv4") not in _IP_ADDRESS_TYPES:
        return None
    ports = {p.get("name") or "": p.get("port") for p in raw.get("ports") or () if isinstance(p, Mapping)}
    ready: list[str] = []
    fallback: list[str] = []
    for endpoint in raw.get("endpoints") or ():
        addresses = endpoint.get("addresses") or ()
        if not addresses:
            continue
        # Addresses of one endpoint are fungible; consumers may use the first only.
        address = str(addresses[0])
        conditions = endpoint.get("conditions") or {}
        is_ready = conditions.get("ready") is not False
        serving = conditions.get("serving")
        is_serving = is_ready if serving is None else serving is True
        if is_ready and conditions.get("terminating") is not True:
            ready.append(address)
        elif is_serving and conditions.get("terminating") is True:
            fallback.append(address)
    return SliceEndpoints(
        service,
        _port(ports.get(HTTP_PORT_NAME)),
        _port(ports.get(GRPC_PORT_NAME)),
        tuple(ready),
        tuple(fallback),
    )


def _port(value: object) -> int | None:
    return value if isinstance(value, int) and 0 < value < 65536 else None


def service_endpoints(slices: Iterable[SliceEndpoints]) -> ComponentEndpoints:
    """A Service's endpoints over all its slices: the ready ones, else the serving terminating ones."""
    slices = list(slices)
    for ready in (True, False):
        http = sorted({Upstream(a, s.http_port) for s in slices if s.http_port for a in _addresses(s, ready)})
        grpc = sorted({Upstream(a, s.grpc_port) for s in slices if s.grpc_port for a in _addresses(s, ready)})
        if http or grpc:
            return ComponentEndpoints(http=tuple(http), grpc=tuple(grpc))
    return ComponentEndpoints()


def _addresses(found: SliceEndpoints, ready: bool) -> tuple[str, ...]:
    return found.ready if ready else found.serving_terminating
