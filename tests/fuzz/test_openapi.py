"""Schemathesis against the OpenAPI document the mesh serves: the runtime's Seldon v1 document
(`<deployment>/seldon.json`, what the Swagger page at `api/v1.0/doc/` loads; graph deployments and the V2
protocol serve none). Every operation it describes gets schema-valid and schema-violating requests, both
through the gateway (single model: only the external paths are routed, the rest must be a 404) and
straight at a graph node's runtime (its internal API: predict, transform-input, route, aggregate,
send-feedback, which extproc calls). No answer may be a 5xx but 501 (the document describes every
component type's calls; a model asked to route answers 501 as Seldon's does); no process may die.

Bounded like test_messages: a fixed, derandomized number of examples per operation and mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.fuzz.test_messages import survivors
from tests.helpers.mesh import Mesh

__all__ = ["survivors"]  # the fixture, shared with test_messages

EXAMPLES = 6
NOT_IMPLEMENTED = 501  # /route on a model, /aggregate on a transformer: what it is not, as Seldon answers
DOCUMENT = "/seldon/seldon/iris-model/seldon.json"


@pytest.fixture(scope="module")
def targets(mesh: Mesh) -> Iterator[dict[str, str]]:
    (left,) = [c for c in mesh.get("pair")[0]["status"]["components"] if c["node"] == "left"]
    yield {
        "gateway": mesh.gateway + "/seldon/seldon/iris-model",
        "graph node": f"http://{left['http'][0]}",
    }


@pytest.fixture(scope="module")
def document(mesh: Mesh) -> dict[str, Any]:
    response = httpx.get(mesh.gateway + DOCUMENT, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_document_describes_the_seldon_api(document: dict[str, Any]) -> None:
    assert {"/api/v1.0/predictions", "/api/v1.0/feedback", "/predict", "/send-feedback"} <= set(
        document["paths"]
    )


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
@pytest.mark.parametrize("target", ["gateway", "graph node"])
def test_no_operation_answers_5xx(
    document: dict[str, Any], targets: dict[str, str], survivors: None, target: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(document)
    base_url = targets[target]
    failures: list[str] = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
                continue  # no parameters, no body: nothing can violate the schema

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                response = case.call(base_url=base_url, session=session, timeout=30)
                if response.status_code >= 500 and response.status_code != NOT_IMPLEMENTED:
                    failures.append(f"{case.method} {case.path} {case.body!r:.500} -> {response.text[:500]}")

            run()
    assert not failures, "\n".join(failures[:10])
