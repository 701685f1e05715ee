"""The admission webhook: `POST /validate` and `POST /mutate` (AdmissionReview v1) over HTTPS.

Validating: the same `mesh.spec` parse as `seldon-mesh apply` and the operator, so what the API server
admits is what the operator can run; a rejection names every field path (422 Invalid). Mutating: Seldon's
defaulting, whatever `mesh.spec` defaults (node `type` and `implementation`, a lone predictor's traffic,
MAB router images mapped to the built-in routers, `protocol` and `serverType`), returned as a JSONPatch
of `spec` that only adds missing fields or replaces those defaults (componentSpecs' pod specs are left
as written: their ports are defaulted where they are used). A spec that does not parse is admitted
unpatched by /mutate and refused by /validate, so the user sees one error list.

The chart registers both for `machinelearning.seldon.io` `seldondeployments` (v1, v1alpha2, v1alpha3),
CREATE and UPDATE, `sideEffects: None`, `admissionReviewVersions: ["v1"]`, and chooses:
- `failurePolicy: Fail` for both: a SeldonDeployment admitted unvalidated while the operator is down
  would only fail later in status (and an unmutated one would render differently from the defaulted
  one `seldon-mesh render` shows); with Fail, `kubectl apply` says the webhook is unavailable at once;
- `timeoutSeconds: 5`: a review is a parse of one object in memory (well under 10 ms); 5 s leaves room
  for a pod restart's first handshake without holding `kubectl apply` for the API server's 10 s default.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import logging
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from lightkube import AsyncClient

from mesh.operator import certs
from mesh.operator.config import OperatorConfig
from mesh.spec import SpecError, parse_deployment

log = logging.getLogger("seldon-mesh.operator.webhook")
REVIEW = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
# Fields the mutating webhook may overwrite when present: the ones mesh.spec defaults from a value.
REPLACEABLE = frozenset({"traffic", "type", "implementation"})
FILES_EVERY = 60.0  # seconds between looks at cert-manager's mounted files


def review(body: Mapping[str, Any], mutate: bool) -> dict[str, Any]:
    """The AdmissionReview response to one AdmissionReview request."""
    request = body.get("request") or {}
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
    obj = request.get("object")
    if request.get("operation") in ("DELETE", "CONNECT") or not isinstance(obj, Mapping):
        return {**REVIEW, "response": response}
    try:
        deployment = parse_deployment(obj)
    except SpecError as error:
        if not mutate:
            response["allowed"] = False
            response["status"] = {
                "code": 422,
                "reason": "Invalid",
                "message": str(error),
                "details": {
                    "name": (obj.get("metadata") or {}).get("name", ""),
                    "group": "machinelearning.seldon.io",
                    "kind": "SeldonDeployment",
                    "causes": [
                        {"reason": "FieldValueInvalid", "field": e.path, "message": e.message}
                        for e in error.errors
                    ],
                },
            }
        return {**REVIEW, "response": response}
    if mutate:
        patch = json_patch(obj.get("spec") or {}, deployment.to_manifest().get("spec") or {}, "/spec")
        if patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {**REVIEW, "response": response}


def json_patch(old: Any, new: Any, path: str) -> list[dict[str, Any]]:
    """RFC 6902 operations adding what `new` has and `old` lacks (empty values skipped) and replacing
    the `REPLACEABLE` scalars that differ; lists are walked index by index when their lengths agree."""
    ops: list[dict[str, Any]] = []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for name, value in new.items():
            if name == "componentSpecs":
                continue
            where = f"{path}/{_escape(str(name))}"
            if name not in old:
                if value not in (None, [], {}):
                    ops.append({"op": "add", "path": where, "value": value})
            elif isinstance(value, Mapping | list):
                ops += json_patch(old[name], value, where)
            elif name in REPLACEABLE and old[name] != value:
                ops.append({"op": "replace", "path": where, "value": value})
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            ops += json_patch(before, after, f"{path}/{index}")
    return ops


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def app() -> web.Application:
    async def handle(request: web.Request, mutate: bool) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "expected an AdmissionReview"}, status=400)
        if not isinstance(body, Mapping):
            return web.json_response({"error": "expected an AdmissionReview"}, status=400)
        return web.json_response(review(body, mutate))

    async def validate(request: web.Request) -> web.Response:
        return await handle(request, mutate=False)

    async def mutate(request: web.Request) -> web.Response:
        return await handle(request, mutate=True)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application(client_max_size=8 * 1024 * 1024)
    application.router.add_post("/validate", validate)
    application.router.add_post("/mutate", mutate)
    application.router.add_get("/healthz", healthz)
    return application


class Certificates:
    """Keeps the served certificate current (self-made in a Secret, or cert-manager's files)."""

    def __init__(self, config: OperatorConfig, api: AsyncClient) -> None:
        self.config, self.api = config, api
        self.context: ssl.SSLContext | None = None
        self._files: tuple[float, float] | None = None
        self._serving: bytes = b""

    async def refresh(self) -> ssl.SSLContext:
        if self.config.cert_dir is not None:
            self._from_files(self.config.cert_dir)
        else:
            await self._from_secret()
        assert self.context is not None
        return self.context

    def _from_files(self, folder: Path) -> None:
        crt, key = folder / "tls.crt", folder / "tls.key"
        stamp = (crt.stat().st_mtime, key.stat().st_mtime)
        if stamp != self._files:
            self.context = certs.ssl_context(crt.read_bytes(), key.read_bytes(), self.context)
            self._files = stamp
            log.info("serving the certificate in %s", folder)

    async def _from_secret(self) -> None:
        names = certs.service_names(
            self.config.webhook_service, self.config.pod_namespace, self.config.settings.cluster_domain
        )
        store = certs.SecretStore(self.api, self.config.pod_namespace, self.config.webhook_secret)
        bundle = await store.load()
        renewed = certs.renew(bundle, names, datetime.datetime.now(datetime.UTC))
        if renewed is not None:
            await store.save(renewed)
            log.info("new webhook certificate for %s in Secret %s", names[0], store.name)
            bundle = await store.load() or renewed  # another replica may have won the race: serve theirs
        assert bundle is not None
        if bundle.tls_crt != self._serving:
            self.context = certs.ssl_context(bundle.tls_crt, bundle.tls_key, self.context)
            self._serving = bundle.tls_crt
        await certs.patch_ca_bundle(self.api, self.config.webhook_configs, bundle.ca_crt)


async def serve_webhook(config: OperatorConfig, api: AsyncClient) -> None:
    """Serve until cancelled, re-checking the certificate every `certs.CHECK_EVERY` seconds."""
    keeper = Certificates(config, api)
    context = await _first(keeper)
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.webhook_host, config.webhook_port, ssl_context=context)
    await site.start()
    log.info(
        "admission webhook on https://%s:%d (/validate, /mutate)", config.webhook_host, config.webhook_port
    )
    try:
        while True:
            await asyncio.sleep(FILES_EVERY if config.cert_dir is not None else certs.CHECK_EVERY)
            try:
                await keeper.refresh()
            except Exception:  # keep serving the current certificate; the next check retries
                log.exception("checking the webhook certificate")
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()


async def _first(keeper: Certificates) -> ssl.SSLContext:
    delay = 1.0
    while True:
        try:
            return await keeper.refresh()
        except Exception:  # the Secret API or the mounted files not there yet: retry, never crash-loop
            log.exception("getting the webhook certificate; retrying in %.0fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
