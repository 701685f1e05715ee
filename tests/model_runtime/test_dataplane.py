"""The transport-neutral core, in process, with small user objects."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from model_runtime import SeldonResponse
from model_runtime.codecs import decode_json_message, encode_json_message
from model_runtime.component import Component
from model_runtime.dataplane import DataPlane
from model_runtime.errors import LoadError, NotImplementedByComponent, NotReady, UserCodeError
from model_runtime.message import Request
from model_runtime.settings import ComponentSettings


def _core(user: object, **settings: Any) -> DataPlane:
    core = DataPlane(
        ComponentSettings(class_path="X", unit_id="node", unit_image="img", **settings),
        lambda _: Component(user),
    )
    assert core.load()
    return core


def _call(method: Any, body: dict[str, Any], puid: str | None = None) -> dict[str, Any]:
    reply = method(Request(body, decode_json_message, puid))
    assert reply.message is not None
    return encode_json_message(reply.message)


class Meta3:
    def predict(self, X: Any, names: list[str], meta: dict[str, Any]) -> Any:
        return SeldonResponse(X, tags={"puid": meta["puid"], "t": "runtime"})

    def tags(self) -> dict[str, Any]:
        return {"t": "static", "s": 1}


class KwargsMeta:
    def predict(self, X: Any, names: list[str], **kwargs: Any) -> Any:
        return [[len(kwargs["meta"]["tags"])]]


class OneArg:
    def predict(self, X: Any) -> Any:
        return X.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("user", [Meta3(), KwargsMeta(), OneArg()], ids=lambda u: type(u).__name__)
def test_every_predict_signature_is_called(user: object) -> None:
    out = _call(_core(user).predict, {"meta": {"tags": {"a": 1}}, "data": {"ndarray": [[1, 2]]}})
    assert out["data"]["names"] in (["t:0"], ["t:0", "t:1"])


def test_meta_puid_tags_and_request_path() -> None:
    body = {"meta": {"puid": "from-body", "tags": {"t": "request", "r": 2}}, "data": {"ndarray": [[1.0]]}}
    out = _call(_core(Meta3()).predict, body, puid="from-header")
    assert out["meta"]["puid"] == "from-header"
    # request tags < tags() < per-request SeldonResponse tags
    assert out["meta"]["tags"] == {"t": "runtime", "r": 2, "s": 1, "puid": "from-header"}
    assert out["meta"]["requestPath"] == {"node": "img"}
    assert _call(_core(Meta3()).predict, body)["meta"]["puid"] == "from-body"


def test_metrics_can_be_left_out_of_the_response() -> None:
    class WithMetrics:
        def predict(self, X: Any, names: list[str]) -> Any:
            return X

        def metrics(self) -> list[dict[str, Any]]:
            return [{"type": "GAUGE", "key": "g", "value": 1}]

    body = {"data": {"ndarray": [[1.0]]}}
    assert _call(_core(WithMetrics()).predict, body)["meta"]["metrics"][0]["key"] == "g"
    assert (
        "metrics" not in _call(_core(WithMetrics(), include_metrics_in_response=False).predict, body)["meta"]
    )


@pytest.mark.parametrize(
    "metrics", [[{"type": "SUMMARY", "key": "h", "value": 1}], [{"type": "GAUGE", "value": 1}], {"x": 1}]
)
def test_bad_metrics_are_a_user_code_error(metrics: Any) -> None:
    class BadMetrics:
        def predict(self, X: Any, names: list[str]) -> Any:
            return SeldonResponse(X, metrics=metrics)

    with pytest.raises(UserCodeError):
        _call(_core(BadMetrics()).predict, {"data": {"ndarray": [[1.0]]}})


def test_route_must_be_an_int() -> None:
    class Router:
        def __init__(self, answer: Any) -> None:
            self.answer = answer

        def route(self, X: Any, names: list[str]) -> Any:
            return self.answer

    body = {"data": {"ndarray": [[1.0]]}}
    assert _call(_core(Router(np.int64(2))).route, body)["data"]["ndarray"] == [[2]]
    assert _call(_core(Router(-1)).route, body)["data"]["ndarray"] == [[-1]]
    for bad in ("left", 1.5, True):
        with pytest.raises(UserCodeError):
            _call(_core(Router(bad)).route, body)


def test_missing_methods() -> None:
    core = _core(object())
    body = {"data": {"names": ["a"], "ndarray": [[1.0]]}}
    with pytest.raises(NotImplementedByComponent):
        _call(core.predict, body)
    with pytest.raises(NotImplementedByComponent):
        _call(core.route, body)
    # transformers without the method pass data through, names included
    assert _call(core.transform_input, body)["data"] == {"names": ["a"], "ndarray": [[1.0]]}


def test_not_ready_then_failed() -> None:
    def failing(_: ComponentSettings) -> Component:
        raise LoadError("no weights")

    core = DataPlane(ComponentSettings(class_path="X"), failing)
    with pytest.raises(NotReady) as loading:
        core.check_ready()
    assert loading.value.info == "model is loading"
    assert not core.load()
    with pytest.raises(LoadError) as failed:
        core.check_ready()
    assert failed.value.info == "no weights"
    assert failed.value.reason == "MICROSERVICE_LOAD_FAILED"


def test_unexpected_load_exception_is_reported_with_its_type() -> None:
    def crashing(_: ComponentSettings) -> Component:
        raise KeyError("weights")

    core = DataPlane(ComponentSettings(class_path="X"), crashing)
    assert not core.load()
    with pytest.raises(LoadError) as failed:
        core.check_ready()
    assert "KeyError" in failed.value.info
