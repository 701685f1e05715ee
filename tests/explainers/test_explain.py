"""Explanations through the real mesh (`seldon-mesh up`, Envoy, the SKLEARN_SERVER runtime, the explainer
server in its alibi environment), asked for at Seldon's explainer paths with curl-like httpx calls; the
explainer asks the model for its predictions through the gateway."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest

from tests.explainers.conftest import FEATURES
from tests.helpers.mesh import Mesh

# the first test's setup may build the explainer environment (~3 min; `make pytest` builds it before)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SETOSA = [5.1, 3.5, 1.4, 0.2]
ROWS = [SETOSA, [5.9, 3.0, 4.2, 1.5], [6.9, 3.1, 5.4, 2.1]]
TIMEOUT = httpx.Timeout(120.0)


def _explain(mesh: Mesh, name: str, body: Any, path: str = "api/v1.0/explain") -> httpx.Response:
    return httpx.post(
        f"{mesh.gateway}/seldon/seldon/{name}-explainer/default/{path}", json=body, timeout=TIMEOUT
    )


def _predict(mesh: Mesh, name: str, rows: list[list[float]]) -> np.ndarray:
    path = f"/seldon/seldon/{name}/api/v1.0/predictions"
    return np.asarray(mesh.wait_serving(path, {"data": {"ndarray": rows}}).json()["data"]["ndarray"])


def test_anchor_tabular_names_features_with_precision_and_coverage(mesh: Mesh) -> None:
    response = _explain(mesh, "iris-anchors", {"data": {"ndarray": [SETOSA]}})
    assert response.status_code == 200, response.text
    assert response.headers["seldon-predictor"] == "default"
    explanation = response.json()
    assert explanation["meta"]["name"] == "AnchorTabular"
    data = explanation["data"]
    assert data["anchor"], data
    for condition in data["anchor"]:  # "petal length (cm) <= 1.60": each names a feature of the model
        assert any(feature in condition for feature in FEATURES), condition
    assert 0.9 <= data["precision"] <= 1.0
    assert 0.0 < data["coverage"] <= 1.0
    assert data["raw"]["prediction"] == [0]  # what the model says of the row: setosa (class 0)


def test_kernel_shap_values_sum_with_the_base_value_to_the_model_output(mesh: Mesh) -> None:
    probabilities = _predict(mesh, "iris-shap", ROWS)
    response = _explain(mesh, "iris-shap", {"data": {"ndarray": ROWS}})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    shap_values = np.asarray(data["shap_values"])  # (classes, rows, features)
    assert shap_values.shape == (3, len(ROWS), 4)
    assert data["feature_names"] == FEATURES
    totals = shap_values.sum(axis=2).T + np.asarray(data["expected_value"])  # (rows, classes)
    np.testing.assert_allclose(totals, probabilities, atol=1e-3)


def test_a_v2_explainer_answers_the_explanation_as_a_bytes_output(mesh: Mesh) -> None:
    model_body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": SETOSA}]}
    model = httpx.post(f"{mesh.gateway}/seldon/seldon/iris-v2/v2/models/classifier/infer", json=model_body)
    assert model.status_code == 200, model.text
    probabilities = np.asarray(model.json()["outputs"][0]["data"]).reshape(1, 3)
    response = _explain(
        mesh, "iris-v2", model_body, "v2/models/iris-v2-default-explainer/infer"
    )  # Seldon's name
    assert response.status_code == 200, response.text
    assert response.json()["model_name"] == "iris-v2-default-explainer"
    (output,) = response.json()["outputs"]
    assert (output["name"], output["datatype"]) == ("explanation", "BYTES")
    data = json.loads(output["data"][0])["data"]
    totals = np.asarray(data["shap_values"]).sum(axis=2).T + np.asarray(data["expected_value"])
    np.testing.assert_allclose(totals, probabilities, atol=1e-3)
    assert _explain(mesh, "iris-v2", model_body, "v2/models/iris-v2-explainer/infer").status_code == 200
    wrong = _explain(mesh, "iris-v2", model_body, "v2/models/classifier/infer")
    assert wrong.status_code == 404
    assert "iris-v2-default-explainer" in wrong.json()["error"]


def test_an_explainer_whose_model_is_down_answers_a_seldon_error(mesh: Mesh) -> None:
    for _ in range(2):  # and again: the failed build is retried, the server still answers
        response = _explain(mesh, "iris-down", {"data": {"ndarray": [SETOSA]}})
        assert response.status_code == 503, response.text
        status = response.json()["status"]
        assert (status["status"], status["reason"], status["code"]) == ("FAILURE", "MODEL_UNAVAILABLE", 503)
        assert "iris-down" in status["info"]


def test_bad_requests_get_seldon_errors_and_the_explainer_keeps_serving(mesh: Mesh) -> None:
    url = f"{mesh.gateway}/seldon/seldon/iris-anchors-explainer/default/api/v1.0/explain"
    for body in (b"not json", b'{"data": {}}', b'{"data": {"ndarray": [["a", "b"]]}}', b"[]"):
        response = httpx.post(
            url, content=body, headers={"content-type": "application/json"}, timeout=TIMEOUT
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["status"]["status"] == "FAILURE"
    assert _explain(mesh, "iris-anchors", {"data": {"ndarray": [SETOSA]}}).status_code == 200


def test_the_explainer_is_a_component_of_its_deployment(mesh: Mesh) -> None:
    components = mesh.state("iris-anchors")["components"]
    explainer = [c for c in components if c["node"] == "explainer"]
    assert [(c["predictor"], c["state"]) for c in explainer] == [("default", "Ready")]
    assert explainer[0]["pid"]


def test_tree_shap_explains_the_forest_from_its_own_model_file(mesh: Mesh) -> None:
    probabilities = _predict(mesh, "iris-tree", ROWS)
    response = _explain(mesh, "iris-tree", {"data": {"ndarray": ROWS}})
    assert response.status_code == 200, response.text
    explanation = response.json()
    assert explanation["meta"]["name"] == "TreeShap"
    data = explanation["data"]
    totals = np.asarray(data["shap_values"]).sum(axis=2).T + np.asarray(data["expected_value"])
    np.testing.assert_allclose(totals, probabilities, atol=1e-6)  # exact for trees


def test_anchor_text_names_words_of_the_sentence(mesh: Mesh) -> None:
    sentence = "a wonderful film with great acting"
    response = _explain(mesh, "movies", {"data": {"ndarray": [sentence]}})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["anchor"], data
    assert set(data["anchor"]) <= set(sentence.split())
    assert data["precision"] >= 0.9
    assert data["raw"]["prediction"] == [1]  # the model calls it a good review
    by_text = _explain(mesh, "movies", {"strData": sentence})  # Seldon's strData carries one text
    assert by_text.status_code == 200, by_text.text


def test_integrated_gradients_attribute_the_keras_models_prediction(mesh: Mesh) -> None:
    response = _explain(mesh, "iris-gradients", {"data": {"ndarray": ROWS}})
    assert response.status_code == 200, response.text
    explanation = response.json()
    assert explanation["meta"]["name"] == "IntegratedGradients"
    data = explanation["data"]
    (attributions,) = data["attributions"]  # one input layer
    assert np.asarray(attributions).shape == (len(ROWS), 4)
    predictions = np.asarray(data["predictions"])
    assert data["target"] == predictions.argmax(axis=1).tolist()  # each row explained for its class
    assert np.abs(np.asarray(data["deltas"])).max() < 0.05  # completeness: attributions add up to f(x) - f(0)
