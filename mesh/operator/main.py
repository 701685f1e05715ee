"""`seldon-mesh operator`: the Kubernetes operator (kopf), its admission webhook and its health endpoint.

Runs in-cluster (service account) or against `KUBECONFIG`; one namespace (`--namespace` or
`WATCH_NAMESPACE`) or all. The webhook is served when `--webhook-service` (self-made, self-renewing
certificates) or `--cert-dir` (cert-manager's) is given; `GET /healthz` on `--health-port` is kopf's
liveness probe, which answers once the operator is watching.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import kopf
from lightkube import AsyncClient, KubeConfig

from mesh.operator.config import ConfigError, OperatorConfig, from_args
from mesh.operator.handlers import build_registry, configure
from mesh.operator.reconcile import Reconciler

log = logging.getLogger("seldon-mesh.operator")


def main(argv: Sequence[str]) -> int:
    try:
        config = from_args(argv)
    except ConfigError as error:
        print(f"seldon-mesh operator: {error}", file=sys.stderr)
        return 2
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(config))
    return 0


async def run(config: OperatorConfig, stop: asyncio.Event | None = None) -> None:
    api = AsyncClient(KubeConfig.from_env(), field_manager=config.field_manager)
    reconciler = Reconciler(api, config.settings, config.field_manager)
    registry = build_registry(reconciler, config.controller_id)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    tasks: list[asyncio.Task[Any]] = []

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:  # before kopf waits for the loop's other tasks to end
        await reconciler.close()
        await api.close()
        for task in tasks:
            task.cancel()

    if config.webhook_enabled:
        from mesh.operator.webhook import serve_webhook

        tasks.append(asyncio.create_task(serve_webhook(config, api)))
    namespaces = [config.namespace] if config.namespace else []
    operator = kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://{config.health_host}:{config.health_port}/healthz",
        stop_flag=stop,  # None: kopf stops on SIGTERM/SIGINT
    )
    try:
        await operator
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await reconciler.close()
        await api.close()
