"""Builders shared by the traffic tests: deployments with two predictors, endpoints, request loops."""

from __future__ import annotations

import http.client
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.xds_controller import builders as b
from tests.xds_controller.harness import GrpcUpstream, HttpUpstream
from xds_controller.translate import ComponentEndpoints, ComponentKey, Upstream


def key(name: str, predictor: str, node: str = "model") -> ComponentKey:
    return ComponentKey("default", name, predictor, node)


def at(*upstreams: HttpUpstream | GrpcUpstream) -> tuple[Upstream, ...]:
    return tuple(Upstream("127.0.0.1", up.port) for up in upstreams)


def split(
    name: str,
    weights: dict[str, int],
    shadows: Iterable[tuple[str, int]] = (),
    annotations: Mapping[str, str] | None = None,
) -> b.Deployment:
    """A deployment whose predictors take `weights`, plus shadows (name, traffic) and annotations."""
    predictors = [b.Predictor(p, b.Unit("model"), traffic=w) for p, w in weights.items()]
    predictors += [b.Predictor(p, b.Unit("model"), traffic=w, shadow=True) for p, w in shadows]
    deployment = b.deployment(name, *predictors)
    deployment.annotations.update(annotations or {})
    return deployment


def rest(name: str, upstreams: dict[str, HttpUpstream]) -> dict[ComponentKey, ComponentEndpoints]:
    return {key(name, predictor): ComponentEndpoints(http=at(up)) for predictor, up in upstreams.items()}


def predictors_served(client: httpx.Client, url: str, count: int, **headers: str) -> Counter[str]:
    """Send `count` GETs and count the `Seldon-Predictor` of the answers (all must be 200)."""
    served: Counter[str] = Counter()
    for _ in range(count):
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        served[response.headers["Seldon-Predictor"]] += 1
    return served


def predictors_served_concurrently(url: str, count: int, clients: int = 4) -> Counter[str]:
    """`predictors_served` over `clients` keep-alive connections at once (faster than one)."""
    with ThreadPoolExecutor(clients) as pool:
        parts = pool.map(lambda n: _served_on_own_client(url, n), [count // clients] * clients)
        return sum(parts, Counter())


def _served_on_own_client(url: str, count: int) -> Counter[str]:
    """A bare http.client keep-alive loop: a tenth of httpx's per-request cost."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
    served: Counter[str] = Counter()
    try:
        for _ in range(count):
            connection.request("GET", parsed.path)
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200, body
            served[response.headers["Seldon-Predictor"]] += 1
    finally:
        connection.close()
    return served
