"""`python -m xds_controller.kube`: the seldon-mesh gateway's control plane in a Kubernetes cluster.

    python -m xds_controller.kube --xds-port 18000 --health-port 8081 --listen-port 8080 [--namespace NS]

Watches SeldonDeployments and EndpointSlices (one namespace, or all; env WATCH_NAMESPACE when no flag)
and serves the gateway Envoy (node id `seldon-mesh-gateway`) over ADS, delta or state of the world.
Kubernetes access: in-cluster service account, else `KUBECONFIG`/~/.kube/config, or `--api-server URL`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from xds_controller.kube.controller import NODE_ID, ControllerSettings, GatewayController
from xds_controller.kube.health import start_health_server
from xds_controller.kube.source import KubeSource
from xds_controller.server import ServerSettings, create_server

log = logging.getLogger("xds_controller.kube")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m xds_controller.kube", description=__doc__.split("\n")[0])
    parser.add_argument("--xds-host", default="0.0.0.0", help="address the ADS server binds (default: all)")
    parser.add_argument("--xds-port", type=int, default=18000, help="ADS gRPC port (default 18000)")
    parser.add_argument("--health-host", default="0.0.0.0")
    parser.add_argument("--health-port", type=int, default=8081, help="/healthz and /readyz (default 8081)")
    parser.add_argument(
        "--listen-port", type=int, default=8080, help="the Envoy listener's port (default 8080)"
    )
    parser.add_argument("--listen-host", default="0.0.0.0", help="the Envoy listener's address")
    parser.add_argument(
        "--namespace",
        default=os.environ.get("WATCH_NAMESPACE") or None,
        help="watch one namespace (default: env WATCH_NAMESPACE, else all namespaces)",
    )
    parser.add_argument("--node-id", default=NODE_ID, help=f"Envoy node id served (default {NODE_ID})")
    parser.add_argument(
        "--api-server", default=None, help="Kubernetes API URL (default: in-cluster or KUBECONFIG)"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


async def serve(args: argparse.Namespace, stop: asyncio.Event) -> None:
    source = KubeSource(args.namespace, args.api_server)
    controller = GatewayController(
        source,
        ControllerSettings(node_id=args.node_id, listen_host=args.listen_host, listen_port=args.listen_port),
    )
    server, port = await create_server(
        ServerSettings(host=args.xds_host, port=args.xds_port), controller.cache
    )
    health = await start_health_server(
        args.health_host, args.health_port, controller.synced.is_set, controller.status
    )
    log.info(
        "ADS on %s:%d, health on %s:%d, watching %s",
        args.xds_host, port, args.health_host, args.health_port, args.namespace or "all namespaces",
    )  # fmt: skip
    running = asyncio.create_task(controller.run())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()  # a crash: raise it
    finally:
        for task in (running, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        health.close()
        await server.stop(1.0)
        await source.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(args, stop)

    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
