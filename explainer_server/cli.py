"""`python -m explainer_server`: arguments, then serve until SIGTERM.

The local supervisor starts it through `explainer_server.env launch` with the same port arguments as a
model runtime (`--http-port`, `--grpc-port` (unused: Seldon's explainer has no gRPC API), `--metrics-port`);
in a cluster it is the explainer container's command. The gateway the model is asked through is
`--gateway-url`, else `SELDON_MESH_GATEWAY_URL`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from pathlib import Path

from explainer_server.errors import ExplainerError
from explainer_server.explainers import ExplainerSpec, Explanations, parse_init_parameters
from explainer_server.model_client import ModelClient, ModelTarget
from explainer_server.server import State, serve

log = logging.getLogger("explainer_server")
GATEWAY_ENV = "SELDON_MESH_GATEWAY_URL"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="explainer_server", description=__doc__)
    parser.add_argument("--type", required=True, help="alibi explainer: AnchorTabular, KernelShap, ...")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--deployment", required=True, help="the SeldonDeployment whose model is explained")
    parser.add_argument("--predictor", required=True)
    parser.add_argument("--model-name", required=True, help="the graph's root node (the V2 model name)")
    parser.add_argument("--protocol", choices=("seldon", "v2"), default="seldon")
    parser.add_argument("--model-uri", default=None, help="a saved explainer (alibi's save format)")
    parser.add_argument("--init-parameters", default=None, help="JSON: arguments to build one instead")
    parser.add_argument("--config", default="{}", help="JSON: explain() arguments (Seldon's strings)")
    parser.add_argument("--tree-model", default=None, help="TreeShap: the model file or folder")
    parser.add_argument("--gateway-url", default=os.environ.get(GATEWAY_ENV, "http://127.0.0.1:8000"))
    parser.add_argument(
        "--predictor-url", default=None, help="the predictor's address, instead of the gateway"
    )
    parser.add_argument("--predict-timeout-s", type=float, default=30.0, help="seconds per model call")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=9000)
    parser.add_argument("--grpc-port", type=int, default=None)
    parser.add_argument("--metrics-port", type=int, default=None)
    return parser


def _v2_names(args: argparse.Namespace) -> tuple[str, tuple[str, ...]]:
    """Seldon's V2 explainer model name `<deployment>-<predictor>-explainer`, and `<deployment>-explainer`."""
    return f"{args.deployment}-{args.predictor}-explainer", (f"{args.deployment}-explainer",)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    target = ModelTarget(
        gateway_url=args.gateway_url,
        namespace=args.namespace,
        deployment=args.deployment,
        predictor=args.predictor,
        protocol=args.protocol,
        model_name=args.model_name,
        timeout_s=args.predict_timeout_s,
        predictor_url=args.predictor_url,
    )
    state: State | None = None
    try:
        spec = ExplainerSpec(
            type=args.type,
            model_uri=args.model_uri or None,
            init_parameters=parse_init_parameters(args.init_parameters),
            config=json.loads(args.config or "{}"),
            tree_model=args.tree_model,
        )
        explanations = Explanations(spec, ModelClient(target), base_dir=Path.cwd())
    except (ExplainerError, ValueError) as error:
        explanations = Explanations(ExplainerSpec(type=args.type), ModelClient(target))
        state = State(explanations, *_v2_names(args))
        state.failure = str(error)
    if state is None:
        state = State(explanations, *_v2_names(args))
    servers = [serve(state, args.host, args.http_port)]
    if args.metrics_port:
        servers.append(serve(state, args.host, args.metrics_port))
    log.info(
        "explainer %s of %s/%s on %s:%s",
        args.type,
        args.namespace,
        args.deployment,
        args.host,
        args.http_port,
    )
    if state.failure is None:
        try:
            explanations.check()
            state.ready = True
            log.info("ready: explanations ask %s", target.url)
        except ExplainerError as error:
            state.failure = str(error)
    if state.failure is not None:
        log.error("cannot serve explanations: %s", state.failure)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    for server in servers:
        server.shutdown()
        server.server_close()
    return 0
