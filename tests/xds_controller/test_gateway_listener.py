"""The scoped gateway's two connection managers: HTTP/1.x (scope from the path) and h2c (Lua scope filter)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from tests.xds_controller import builders as b
from tests.xds_controller.harness import ControlPlane, Gateway, HttpUpstream
from xds_controller.translate import ComponentEndpoints, ComponentKey, GatewaySettings, Upstream, translate
from xds_controller.translate.extproc import EXTPROC_FILTER, OBSERVE_FILTER
from xds_controller.translate.scopes import LUA_FILTER

EXTPROC = GatewaySettings(extproc=Upstream("127.0.0.1", 7100), scoped=True)
BODY = {"data": {"ndarray": [[1]]}}


def _hcm(chain: listener_components_pb2.FilterChain) -> hcm_pb2.HttpConnectionManager:
    manager = hcm_pb2.HttpConnectionManager()
    chain.filters[0].typed_config.Unpack(manager)
    return manager


def _extractors(manager: hcm_pb2.HttpConnectionManager) -> list[tuple[str, str, int]]:
    fragments = manager.scoped_routes.scope_key_builder.fragments
    return [(f.header_value_extractor.name, f.header_value_extractor.element_separator,
             f.header_value_extractor.index) for f in fragments]  # fmt: skip


def test_http1_connections_take_the_scope_from_the_path_and_pass_no_enabled_filter() -> None:
    (listener,) = translate([], {}, EXTPROC).listeners
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.http_inspector"]
    assert listener.continue_on_listener_filters_timeout  # a silent connection is served, not closed
    (http1,) = listener.filter_chains
    assert set(http1.filter_chain_match.application_protocols) == {"http/1.1", "http/1.0"}
    manager = _hcm(http1)
    assert _extractors(manager) == [(":path", "/", 2), (":path", "/", 3)]
    filters = list(manager.http_filters)
    assert [f.name for f in filters] == [EXTPROC_FILTER, OBSERVE_FILTER, "envoy.filters.http.router"]
    assert filters[0].disabled and filters[1].disabled  # the route is known: routes enable them


def test_other_connections_keep_the_lua_scope_filter_and_skipping_ext_proc_filters() -> None:
    (listener,) = translate([], {}, EXTPROC).listeners
    manager = _hcm(listener.default_filter_chain)
    assert _extractors(manager) == [("x-seldon-scope", "/", 0), ("x-seldon-scope", "/", 1)]
    filters = list(manager.http_filters)
    assert [f.name for f in filters] == [
        LUA_FILTER,
        EXTPROC_FILTER,
        OBSERVE_FILTER,
        "envoy.filters.http.router",
    ]
    assert not any(f.disabled for f in filters)


def test_scopes_are_keyed_by_namespace_and_name() -> None:
    resources = translate([b.single("iris")], {}, GatewaySettings(scoped=True))
    keys = {s.name: [f.string_key for f in s.key.fragments] for s in resources.scoped_routes}
    assert keys == {"seldon-gateway/default/iris": ["default", "iris"], "seldon-gateway.default": ["-", "-"]}


# -- through a real Envoy ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    control = ControlPlane().start()
    yield control
    control.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[HttpUpstream]:
    server = HttpUpstream("rest-a").start()
    yield server
    server.stop()


@pytest.fixture
def gateway(plane: ControlPlane, upstream: HttpUpstream, tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(plane, tmp_path / "envoy", scoped=True)
    key = ComponentKey("default", "iris", "default", "model")
    gw.apply(
        gw.resources(
            [b.single("iris")], {key: ComponentEndpoints(http=(Upstream("127.0.0.1", upstream.port),))}
        )
    )
    yield gw
    gw.stop()


@pytest.mark.slow
def test_rest_over_http1_reaches_its_deployment_and_anything_else_is_a_seldon_404(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        served = client.post("/seldon/default/iris/api/v1.0/predictions", json=BODY)
        assert served.status_code == 200 and served.json()["upstream"] == "rest-a"
        assert served.json()["path"] == "/api/v1.0/predictions"
        assert "x-seldon-scope" not in served.json()["headers"]
        for path in (
            "/seldon/default/other/api/v1.0/predictions",
            "/",
            "/seldon/default/iris",
            "/x/default/iris/",
        ):
            missing = client.post(path, json=BODY)
            assert missing.status_code == 404, path
            assert missing.json()["status"]["reason"] == "NOT_FOUND"
            assert missing.headers["Seldon-Puid"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl for REST over h2c")
def test_rest_over_h2c_goes_through_the_lua_scope_filter(gateway: Gateway) -> None:
    def post(path: str, body: bool = True) -> tuple[int, dict[str, object]]:
        command = ["curl", "-s", "--http2-prior-knowledge", "-w", "\n%{http_code} %{http_version}"]
        command += ["-X", "POST", "-H", "content-type: application/json"]
        command += ["-d", json.dumps(BODY)] if body else []
        command.append(gateway.url + path)
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
        body, _, status = out.rpartition("\n")
        code, version = status.split()
        assert version == "2"
        return int(code), dict(json.loads(body))

    code, served = post("/seldon/default/iris/api/v1.0/predictions")
    assert code == 200 and served["upstream"] == "rest-a"
    # Bodiless: Envoy answers a 404 before reading a body and then resets the stream (RST_STREAM
    # NO_ERROR, as HTTP/2 allows), which curl 7.88 reports as error 92 without printing the answer.
    code, missing = post("/seldon/default/other/api/v1.0/predictions", body=False)
    assert code == 404 and missing["status"] == {
        "code": 404,
        "info": "no SeldonDeployment serves /seldon/default/other/api/v1.0/predictions",
        "reason": "NOT_FOUND",
        "status": "FAILURE",
    }


# -- slow clients -----------------------------------------------------------------------------------------
def test_both_connection_managers_bound_headers_and_the_whole_request() -> None:
    (listener,) = translate([], {}, EXTPROC).listeners
    for chain in (listener.filter_chains[0], listener.default_filter_chain):
        manager = _hcm(chain)
        assert manager.request_headers_timeout.ToMilliseconds() == 10_000
        assert manager.request_timeout.ToMilliseconds() == 30_000


@pytest.fixture
def impatient(plane: ControlPlane, upstream: HttpUpstream, tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(plane, tmp_path / "envoy")
    gw.settings = dataclasses.replace(gw.settings, request_headers_timeout_s=1.0, request_timeout_s=2.0)
    key = ComponentKey("default", "iris", "default", "model")
    gw.apply(
        gw.resources(
            [b.single("iris")], {key: ComponentEndpoints(http=(Upstream("127.0.0.1", upstream.port),))}
        )
    )
    yield gw
    gw.stop()


def _trickle(port: int, pieces: list[bytes], pause_s: float) -> bytes:
    """Send `pieces` with pauses (a slow client), then read what the gateway answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        with contextlib.suppress(OSError):  # the gateway may close on us mid-way: read its answer
            for piece in pieces:
                conn.sendall(piece)
                time.sleep(pause_s)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                answer += chunk
    return answer


@pytest.mark.slow
def test_a_client_trickling_headers_gets_a_408(impatient: Gateway) -> None:
    port = impatient.settings.listen_port
    head = b"POST /seldon/default/iris/api/v1.0/predictions HTTP/1.1\r\nHost: x\r\nX-Slow: "
    answer = _trickle(port, [head, *[b"a"] * 8], 0.5)
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == b"408", answer[:200]


@pytest.mark.slow
def test_a_client_trickling_its_body_gets_a_408_in_seldons_shape(impatient: Gateway) -> None:
    port = impatient.settings.listen_port
    body = json.dumps(BODY).encode()
    head = (
        "POST /seldon/default/iris/api/v1.0/predictions HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer = _trickle(port, [head, *[bytes([c]) for c in body]], 0.3)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split(b" ")[1] == b"408", answer[:200]
    assert b'"REQUEST_TIMEOUT"' in rest
