"""The REST edge behind a real Envoy, routed the way a graph route would send it: Envoy's pooled HTTP/1.1
upstream connections, the predictor header the route adds, and a route that rewrites the path."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from extproc.server.rest import create_rest_server
from mesh.local.envoy import EnvoyProcess
from tests.extproc.test_rest_edge import LIMIT, _frontend
from tests.helpers.ports import free_port

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _bootstrap(listen: int, edge: int) -> dict[str, Any]:
    predictor = [
        {
            "header": {"key": "x-seldon-predictor", "value": "main"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    ]
    routes = [
        {  # rewrites like the gateway's REST routes: the edge reads Envoy's x-envoy-original-path
            "match": {
                "prefix": "/seldon/default/dep/",
                "headers": [{"name": "x-rewrite", "present_match": True}],
            },
            "route": {"cluster": "edge", "prefix_rewrite": "/"},
            "request_headers_to_add": predictor,
        },
        {"match": {"prefix": "/seldon/"}, "route": {"cluster": "edge"}, "request_headers_to_add": predictor},
    ]
    manager = {
        "@type": HCM,
        "stat_prefix": "edge",
        "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": routes}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }
    listener = {
        "name": "edge",
        "address": _address(listen),
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": manager}]}],
    }  # fmt: skip
    cluster = {
        "name": "edge",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "edge",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(edge)}}]}],
        },
    }
    return {
        "static_resources": {"listeners": [listener], "clusters": [cluster]},
        "admin": {"address": _address(0)},
    }


def test_graph_requests_through_envoy(tmp_path: Path) -> None:
    async def run() -> list[httpx.Response]:
        server, port = await create_rest_server(_frontend(), "127.0.0.1", 0)
        listen = free_port()
        envoy = EnvoyProcess(_bootstrap(listen, port), tmp_path / "envoy", concurrency=1)
        await asyncio.to_thread(envoy.start)
        try:
            body = {"data": {"ndarray": [[1.0]]}}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listen}", timeout=30) as client:
                answers = [
                    await client.post("/seldon/default/dep/api/v1.0/predictions", json=body)
                    for _ in range(20)
                ]
                answers.append(
                    await client.post(
                        "/seldon/default/dep/api/v1.0/predictions", json=body, headers={"x-rewrite": "1"}
                    )
                )
                answers.append(
                    await client.post("/seldon/default/dep/api/v1.0/predictions", content=b"{oops")
                )
                for size in (LIMIT + 1, 3 * LIMIT):
                    # the second is refused long before Envoy has sent it all: the 413 must still arrive
                    answers.append(
                        await client.post("/seldon/default/dep/api/v1.0/predictions", content=b" " * size)
                    )
                answers.append(await client.post("/seldon/default/dep/api/v1.0/predictions", json=body))
            return answers
        finally:
            await asyncio.to_thread(envoy.stop)
            server.close()
            await server.wait_closed()

    answers = asyncio.run(run())
    for answer in answers[:20]:
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["ndarray"] == [[20.0]]
        # Envoy's generated request id is the puid, in the body and the header
        assert answer.headers["seldon-puid"] == answer.json()["meta"]["puid"] != ""
        assert answer.headers["seldon-predictor"] == "main"
    rewritten, bad_json, too_big, much_too_big, after = answers[20:]
    assert rewritten.status_code == 200 and rewritten.json()["data"]["ndarray"] == [[20.0]]
    assert bad_json.status_code == 400 and bad_json.json()["status"]["reason"] == "BAD_REQUEST"
    for refused in (too_big, much_too_big):
        assert refused.status_code == 413 and refused.json()["status"]["reason"] == "PAYLOAD_TOO_LARGE"
    assert after.status_code == 200  # Envoy got a fresh connection after the edge closed the 413 one
