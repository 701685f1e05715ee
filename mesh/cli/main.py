"""The `seldon-mesh` command: `up` runs the local mesh; `apply`, `get`, `delete`, `predict` and `metrics`
talk to it; `detector` runs or renders an outlier, adversarial or drift detector."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from mesh.cli.client import CliError, ControlClient
from mesh.cli.output import render
from mesh.local import limits
from mesh.spec import Loaded, SecretDocument, SeldonDeployment, SpecError, read_documents, read_path


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["operator"]:
        # The operator's own parser reads every flag after the word: argparse's REMAINDER would refuse
        # a first argument starting with `--` (`seldon-mesh operator --settings ...`).
        return _operator(argparse.Namespace(operator_args=words[1:]))
    if words[:1] == ["detector"]:  # its server's own parser reads the rest (Seldon's alibi-detect flags)
        from mesh.cli.detector import main as detector_main

        try:
            return detector_main(words[1:])
        except CliError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    parser = _parser()
    args = parser.parse_args(words)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.handler(args)
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seldon-mesh", description=__doc__)
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".seldon-mesh"),
        help="state of the local mesh (default .seldon-mesh)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser(
        "up", parents=[common], help="run the local mesh (Envoy, xDS, runtimes) in the foreground"
    )
    up.add_argument("paths", nargs="*", type=Path, help="SeldonDeployment files or folders to apply at start")
    up.add_argument("--port", type=int, default=8000, help="gateway port (default 8000)")
    up.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    up.add_argument("--workers", type=int, default=1, help="worker processes per runtime (default 1)")
    up.add_argument(
        "--xds", choices=["delta", "sotw"], default="delta", help="ADS variant Envoy uses (default delta)"
    )
    up.add_argument(
        "--graph-edge",
        choices=["ext_proc", "http", "ext_proc-http"],
        default="http",
        help="how Envoy hands REST graph requests to extproc: an HTTP/1.1 upstream, extproc's REST edge "
        "(default), or ext_proc: an ext_proc stream enabled on the route, or ext_proc-http: the ext_proc "
        "filter over Envoy's http_service to that edge",
    )
    up.set_defaults(handler=_up)

    apply = sub.add_parser("apply", parents=[common], help="create or update SeldonDeployments")
    apply.add_argument(
        "-f", "--filename", action="append", required=True, help="file, folder, or - for stdin"
    )
    apply.set_defaults(handler=_apply)

    get = sub.add_parser("get", parents=[common], help="show deployments and their state")
    get.add_argument("name", nargs="?")
    get.add_argument("-n", "--namespace")
    get.add_argument("-o", "--output", choices=["table", "yaml", "json"], default="table")
    get.add_argument("--metrics", action="store_true", help="list every Prometheus scrape endpoint instead")
    get.set_defaults(handler=_get)

    metrics = sub.add_parser(
        "metrics", parents=[common], help="list every Prometheus scrape endpoint of the mesh"
    )
    metrics.add_argument("-o", "--output", choices=["table", "json"], default="table")
    metrics.set_defaults(handler=_metrics)

    delete = sub.add_parser("delete", parents=[common], help="delete a deployment")
    delete.add_argument("name")
    delete.add_argument("-n", "--namespace")
    delete.set_defaults(handler=_delete)

    predict = sub.add_parser("predict", parents=[common], help="send a Seldon prediction through the gateway")
    predict.add_argument("name")
    predict.add_argument("-n", "--namespace")
    predict.add_argument(
        "--data", required=True, help='request JSON, e.g. \'{"data":{"ndarray":[[1,2,3,4]]}}\''
    )
    predict.set_defaults(handler=_predict)

    render_cmd = sub.add_parser(
        "render",
        help="print the Kubernetes objects of SeldonDeployments as one YAML stream for kubectl apply -f -",
    )
    render_cmd.add_argument(
        "-f", "--filename", action="append", required=True, help="file, folder, or - for stdin"
    )
    render_cmd.add_argument(
        "--ingress",
        choices=["istio", "gateway-api", "seldon-mesh"],
        default="istio",
        help="istio: VirtualService + DestinationRule (default); gateway-api: HTTPRoute + GRPCRoute; "
        "seldon-mesh: workloads only, the seldon-mesh gateway is programmed over xDS",
    )
    render_cmd.add_argument("--istio-gateway", default=None, help="namespace/name of the Istio Gateway")
    render_cmd.add_argument(
        "--settings", type=Path, help="YAML or JSON render settings (the chart's settings ConfigMap)"
    )
    render_cmd.set_defaults(handler=_render)

    operator = sub.add_parser(
        "operator", help="run the Kubernetes operator (in-cluster config, or KUBECONFIG)", add_help=False
    )
    operator.add_argument("operator_args", nargs=argparse.REMAINDER)
    operator.set_defaults(handler=_operator)
    return parser


def _up(args: argparse.Namespace) -> int:
    from mesh.local.app import LocalMesh, MeshError
    from mesh.local.settings import LocalSettings, gateway_tracing_from_env

    # Everything `up` and its children write (store, spool, logs) is the owner's alone.
    os.umask(0o077)
    # Runtimes that log their single model in process spool under the state dir, beside extproc's.
    os.environ.setdefault("SELDON_MESH_SPOOL_DIR", str((args.state_dir / "spool" / "runtimes").resolve()))
    initial: list[tuple[list[SeldonDeployment], Path]] = []
    secret_documents: list[SecretDocument] = []
    for path in args.paths:
        initial.append((_load(path, secret_documents), _base_dir(path)))
    settings = LocalSettings(
        state_dir=args.state_dir,
        host=args.host,
        gateway_port=args.port,
        runtime_workers=args.workers,
        xds_delta=args.xds == "delta",
        graph_edge=args.graph_edge,
        tracing=gateway_tracing_from_env(os.environ),
    )
    try:
        asyncio.run(LocalMesh(settings).run(initial, secret_documents))
    except MeshError as error:
        raise CliError(str(error)) from error
    return 0


def _load(path: Path, secret_documents: list[SecretDocument] | None = None) -> list[SeldonDeployment]:
    if not path.exists():
        raise CliError(f"{path}: no such file or folder")
    return _reported(functools.partial(read_path, path), secret_documents)


def _reported(
    read: Callable[[], Loaded], secret_documents: list[SecretDocument] | None = None
) -> list[SeldonDeployment]:
    """The deployments `read` finds (its Secrets added to `secret_documents`); what it skipped, kept and
    the unknown fields it ignored go to stderr."""
    try:
        loaded = read()
    except SpecError as error:
        raise CliError(f"invalid SeldonDeployment, nothing was applied:\n{error}") from error
    for skipped in loaded.skipped:
        print(f"note: {skipped}", file=sys.stderr)
    for secret in loaded.secrets:
        print(f"note: {secret}", file=sys.stderr)
    if secret_documents is not None:
        secret_documents.extend(loaded.secrets)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return loaded.deployments


def _base_dir(path: Path) -> Path:
    return (path if path.is_dir() else path.parent).resolve()


def _check_local(deployments: list[SeldonDeployment], base_dir: Path, name: str) -> None:
    """Refuse what one machine cannot serve, by field path, before anything is sent; warn about what only
    a cluster acts on; an input with no SeldonDeployment is an error, never a silent success."""
    if not deployments:
        raise CliError(f"{name}: no SeldonDeployment in it, nothing was applied")
    errors = [e.with_source(name) for d in deployments for e in limits.problems(d, base_dir)]
    if errors:
        raise CliError(f"cannot serve this here, nothing was applied:\n{SpecError(errors)}")
    for deployment in deployments:
        for note in limits.warnings(deployment):
            print(f"warning: {name}: {deployment.metadata.name}: {note}", file=sys.stderr)


def _apply(args: argparse.Namespace) -> int:
    client = ControlClient(args.state_dir)
    documents: list[tuple[str, str, Path]] = []
    for name in args.filename:
        if name == "-":
            text = sys.stdin.read()
            _check_local(_reported(functools.partial(read_documents, text, "<stdin>")), Path.cwd(), "<stdin>")
            documents.append((text, "<stdin>", Path.cwd()))
            continue
        path = Path(name)
        # Validate locally first: every error at once, and nothing is sent on failure.
        _check_local(_load(path), _base_dir(path), name)
        files = (
            sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
            if path.is_dir()
            else [path]
        )
        documents += [(f.read_text(), str(f), _base_dir(path)) for f in files]
    failed = False
    for text, source, base_dir in documents:
        response = client.apply(text, source, base_dir)
        if response.status_code == 422:
            print(f"error: invalid SeldonDeployment in {source}, nothing was applied:", file=sys.stderr)
            for err in response.json()["errors"]:
                print(f"  {err['path']}: {err['message']}", file=sys.stderr)
            failed = True
            continue
        response.raise_for_status()
        for result in response.json()["results"]:
            kind = (
                "secret" if result.get("kind") == "Secret" else "seldondeployment.machinelearning.seldon.io"
            )
            print(f"{kind}/{result['name']} {result['action']}")
    return 1 if failed else 0


def _resolve(client: ControlClient, name: str, namespace: str | None) -> tuple[str, str]:
    """kubectl needs -n; as a convenience a name that is unique across namespaces needs none."""
    if namespace:
        return namespace, name
    matches = [d for d in client.deployments() if d["metadata"]["name"] == name]
    if len(matches) == 1:
        return str(matches[0]["metadata"]["namespace"]), name
    if not matches:
        raise CliError(f'seldondeployment "{name}" not found')
    raise CliError(f'seldondeployment "{name}" exists in several namespaces; give -n')


def _get(args: argparse.Namespace) -> int:
    if args.metrics:
        return _metrics(args)
    client = ControlClient(args.state_dir)
    deployments = client.deployments(args.namespace)
    if args.name:
        deployments = [d for d in deployments if d["metadata"]["name"] == args.name]
        if not deployments:
            raise CliError(f'seldondeployment "{args.name}" not found')
    elif not deployments:
        print("No resources found.", file=sys.stderr)
        return 0
    print(render(deployments, args.output, detail=bool(args.name)))
    return 0


def _metrics(args: argparse.Namespace) -> int:
    endpoints = ControlClient(args.state_dir).scrape_endpoints()
    if args.output == "json":
        print(json.dumps(endpoints, indent=2))
        return 0
    width = max([len("COMPONENT"), *(len(e["component"]) for e in endpoints)])
    print(f"{'COMPONENT':<{width}}  SCRAPE URL")
    for endpoint in endpoints:
        url = endpoint["url"] or f"<none: {endpoint.get('note', 'no metrics endpoint')}>"
        print(f"{endpoint['component']:<{width}}  {url}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    client = ControlClient(args.state_dir)
    namespace, name = _resolve(client, args.name, args.namespace)
    if not client.delete(namespace, name):
        raise CliError(f'seldondeployment "{name}" not found in namespace {namespace}')
    print(f'seldondeployment.machinelearning.seldon.io "{name}" deleted')
    return 0


def _predict(args: argparse.Namespace) -> int:
    client = ControlClient(args.state_dir)
    namespace, name = _resolve(client, args.name, args.namespace)
    try:
        payload = json.loads(args.data)
    except json.JSONDecodeError as error:
        raise CliError(f"--data is not JSON: {error}") from error
    url = f"{client.info()['gateway']}/seldon/{namespace}/{name}/api/v1.0/predictions"
    try:
        response = httpx.post(url, json=payload, timeout=60.0)
    except httpx.HTTPError as error:
        raise CliError(f"gateway {url}: {error}") from error
    print(json.dumps(response.json(), indent=2) if _is_json(response) else response.text)
    return 0 if response.is_success else 1


def _render(args: argparse.Namespace) -> int:
    from mesh.cli.render import render_command

    return render_command(args.filename, args.ingress, args.istio_gateway, args.settings)


def _operator(args: argparse.Namespace) -> int:
    from mesh.operator.main import main as operator_main

    return operator_main(list(args.operator_args))


def _is_json(response: httpx.Response) -> bool:
    return str(response.headers.get("content-type", "")).startswith("application/json")


if __name__ == "__main__":
    sys.exit(main())
