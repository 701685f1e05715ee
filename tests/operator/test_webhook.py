"""The admission webhook: AdmissionReviews answered in memory, and a real one over HTTPS on loopback
from `seldon-mesh operator`, trusting the CA it made, kept in its Secret and patched into the
webhook configurations."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime
import json
import os
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lightkube import AsyncClient

from mesh.operator import certs, kube
from mesh.operator.webhook import review
from mesh.spec import parse_deployment
from tests.helpers.ports import free_port
from tests.operator.cluster import Cluster, running_operator, wait_for
from tests.operator.test_operator import sdep

SERVICE, NAMESPACE, SECRET = "seldon-mesh-webhook", "seldon-system", "seldon-mesh-webhook-cert"
CONFIGS = ("seldon-mesh-validating", "seldon-mesh-mutating")


def admission(obj: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "machinelearning.seldon.io", "version": "v1", "kind": "SeldonDeployment"},
            "resource": {
                "group": "machinelearning.seldon.io",
                "version": "v1",
                "resource": "seldondeployments",
            },
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "operation": operation,
            "object": obj,
        },
    }


def broken() -> dict[str, Any]:
    obj = sdep(predictors=[("a", 70), ("b", 50)])
    obj["spec"]["predictors"][1]["graph"]["implementation"] = "NO_SUCH_SERVER"
    return obj


def test_a_good_spec_is_allowed_and_a_bad_one_refused_with_every_field_path() -> None:
    good = review(admission(sdep()), mutate=False)["response"]
    assert good == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}
    bad = review(admission(broken()), mutate=False)["response"]
    assert bad["allowed"] is False
    assert bad["status"]["code"] == 422
    fields = {cause["field"] for cause in bad["status"]["details"]["causes"]}
    assert "spec.predictors[1].graph.implementation" in fields
    assert any(f.startswith("spec.predictors") and "traffic" in bad["status"]["message"] for f in fields)
    for field in fields:
        assert field in bad["status"]["message"]
    assert review(admission(broken(), "DELETE"), mutate=False)["response"]["allowed"] is True


def test_mutate_returns_a_json_patch_that_gives_the_defaulted_spec() -> None:
    obj = sdep()
    del obj["spec"]["predictors"][0]["traffic"]  # a lone predictor: defaulted to 100
    obj["spec"]["predictors"][0]["componentSpecs"] = [
        {"spec": {"containers": [{"name": "classifier", "image": "x/y:1"}]}}
    ]
    response = review(admission(obj), mutate=True)["response"]
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    patched = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    predictor = patched["spec"]["predictors"][0]
    assert predictor["traffic"] == 100
    assert predictor["graph"]["type"] == "MODEL"
    assert predictor["componentSpecs"] == obj["spec"]["predictors"][0]["componentSpecs"]  # left as written
    assert parse_deployment(patched) == parse_deployment(obj)
    assert all(op["path"].startswith("/spec/") for op in ops)
    # defaulting a defaulted spec changes nothing
    again = review(admission(patched), mutate=True)["response"]
    assert "patch" not in again
    # a spec that does not parse is left to /validate
    assert review(admission(broken()), mutate=True)["response"] == {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "allowed": True,
    }


def test_certificates_renew_before_expiry_and_a_new_ca_keeps_the_old_one_trusted() -> None:
    now = datetime.datetime.now(datetime.UTC)
    names = certs.service_names(SERVICE, NAMESPACE)
    first = certs.renew(None, names, now)
    assert first is not None
    assert certs.renew(first, names, now) is None  # fresh: kept
    assert certs.dns_names(first.tls_crt) == names
    later = now + certs.SERVING_LIFETIME - certs.RENEW_BEFORE + datetime.timedelta(days=1)
    serving = certs.renew(first, names, later)
    assert serving is not None and serving.ca_crt == first.ca_crt and serving.tls_crt != first.tls_crt
    assert certs.renew(first, [*names, "other"], now) is not None  # names changed: reissued
    much_later = now + certs.CA_LIFETIME - certs.CA_RENEW_BEFORE + datetime.timedelta(days=1)
    rotated = certs.renew(first, names, much_later)
    assert rotated is not None
    cas = x509.load_pem_x509_certificates(rotated.ca_crt)
    assert len(cas) == 2 and cas[1] == x509.load_pem_x509_certificates(first.ca_crt)[0]
    issuer = x509.load_pem_x509_certificates(rotated.tls_crt)[0].issuer
    assert issuer == cas[0].subject


def webhook_configuration(kind: str, name: str, path: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{path.strip('/')}.seldondeployments.machinelearning.seldon.io",
                "clientConfig": {
                    "service": {"name": SERVICE, "namespace": NAMESPACE, "path": path, "port": 443}
                },
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }
        ],
    }


@pytest.mark.asyncio
async def test_the_operator_serves_admission_reviews_over_https_with_its_own_ca(
    cluster: Cluster, api: AsyncClient, tmp_path: Path
) -> None:
    for kind, name, path in (
        ("ValidatingWebhookConfiguration", CONFIGS[0], "/validate"),
        ("MutatingWebhookConfiguration", CONFIGS[1], "/mutate"),
    ):
        await api.create(
            kube.cluster_resource("admissionregistration.k8s.io/v1", kind)(
                webhook_configuration(kind, name, path)
            )
        )
    port = free_port()
    args = [
        "--webhook-host", "127.0.0.1", "--webhook-port", str(port), "--webhook-service", SERVICE,
        "--webhook-secret", SECRET, "--webhook-config", CONFIGS[0], "--webhook-config", CONFIGS[1],
    ]  # fmt: skip
    async with running_operator(cluster, tmp_path, args) as operator:
        secret = await wait_for(
            lambda: cluster.find("secrets", NAMESPACE, SECRET), 30, "the Secret", operator
        )
        assert secret["type"] == "kubernetes.io/tls"
        ca = base64.b64decode(secret["data"]["ca.crt"])

        def bundles() -> list[str]:
            found = [cluster.find("validatingwebhookconfigurations", None, CONFIGS[0]),
                     cluster.find("mutatingwebhookconfigurations", None, CONFIGS[1])]  # fmt: skip
            return [w["clientConfig"].get("caBundle", "") for c in found if c for w in c["webhooks"]]

        await wait_for(lambda: bundles() == [secret["data"]["ca.crt"]] * 2, 30, "the caBundles", operator)
        trust = ssl.create_default_context(cadata=ca.decode())
        host = f"{SERVICE}.{NAMESPACE}.svc"  # verified against the serving certificate's names

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any] | None:
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(
                        f"https://127.0.0.1:{port}{path}", json=body, ssl=trust, server_hostname=host
                    ) as response,
                ):
                    assert response.status == 200
                    result: dict[str, Any] = await response.json()
                    return result
            except aiohttp.ClientConnectorError:
                return None  # not listening yet

        await wait_for(lambda: post("/validate", admission(sdep())), 30, "the webhook to listen", operator)
        allowed = await post("/validate", admission(sdep()))
        assert allowed is not None and allowed["response"]["allowed"] is True
        assert allowed["apiVersion"] == "admission.k8s.io/v1" and allowed["kind"] == "AdmissionReview"
        refused = await post("/validate", admission(broken()))
        assert refused is not None and refused["response"]["allowed"] is False
        assert "spec.predictors[1].graph.implementation" in refused["response"]["status"]["message"]
        mutated = await post("/mutate", admission(sdep()))
        assert mutated is not None and mutated["response"]["allowed"] is True
        ops = json.loads(base64.b64decode(mutated["response"]["patch"]))
        assert jsonpatch.apply_patch(sdep(), ops)["spec"]["predictors"][0]["graph"]["type"] == "MODEL"


def write_serving(folder: Path, ca: tuple[bytes, bytes], names: list[str], when: datetime.datetime) -> bytes:
    crt, key = certs.make_serving(ca[0], ca[1], names, when)
    (folder / "tls.key").write_bytes(key)
    (folder / "tls.crt").write_bytes(crt)
    return crt


@pytest.mark.asyncio
async def test_cert_manager_files_are_served_and_reloaded_when_renewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_cluster: AsyncClient
) -> None:
    from mesh.operator import webhook
    from mesh.operator.config import from_args

    now = datetime.datetime.now(datetime.UTC)
    ca = certs.make_ca(now)
    names = certs.service_names(SERVICE, NAMESPACE)
    first = write_serving(tmp_path, ca, names, now)
    port = free_port()
    config = from_args(
        ["--cert-dir", str(tmp_path), "--webhook-host", "127.0.0.1", "--webhook-port", str(port)], env={}
    )
    monkeypatch.setattr(webhook, "FILES_EVERY", 0.05)
    trust = ssl.create_default_context(cadata=ca[0].decode())

    async def served() -> bytes | None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trust, server_hostname=names[0])
        except OSError:
            return None
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)

    # with cert-manager's files the webhook never calls the API: a call would fail on no_cluster
    task = asyncio.create_task(webhook.serve_webhook(config, api=no_cluster))
    try:
        assert await wait_for(served, 30, "the webhook to listen") == first
        renewed = write_serving(tmp_path, ca, names, now - datetime.timedelta(hours=1))
        os.utime(tmp_path / "tls.crt", (now.timestamp() + 10, now.timestamp() + 10))
        await wait_for(lambda: _is(served(), renewed), 30, "the renewed certificate to be served")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _is(value: Any, expected: bytes) -> bool:
    return bool(await value == expected)
