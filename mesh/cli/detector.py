"""`seldon-mesh detector`: run an outlier, adversarial or drift detector beside the local mesh, or print
its cluster objects.

    seldon-mesh detector serve  [Seldon's alibi-detect server flags] {OutlierDetector|...} [...]
    seldon-mesh detector render --name NAME [-n NAMESPACE] [the same flags] {OutlierDetector|...} [...]
    seldon-mesh detector env    (build the detector environment now; it is built on first use otherwise)

`serve` fetches `--storage_uri` as a model URI is fetched (s3://, gs://, https://, pvc://, ...; into a
temporary folder), builds the detector's own environment on first use (`detector_server.envs`), then
becomes the detector server (exec), in the foreground, like `seldon-mesh up`. A node's `logger.url`
pointing at `http://127.0.0.1:<--http_port>/` feeds it; the payload log delivers at least once, so a
detector that is down or restarting loses no event. `render` prints the Deployment and Service
(`mesh.render.detectors`) as YAML for `kubectl apply -f -`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from detector_server import envs
from detector_server.settings import parser as server_parser
from mesh.cli.client import CliError
from mesh.cli.render import to_yaml_stream
from mesh.render import RenderSettings
from mesh.render.detectors import DetectorSpec, detector_url, render_detector

_FLAGS = (
    "http_port",
    "host",
    "model_name",
    "protocol",
    "reply_url",
    "event_type",
    "event_source",
    "ce_types",
)


def main(words: Sequence[str]) -> int:
    action, rest = (words[0], list(words[1:])) if words else ("", [])
    if action == "serve":
        return _serve(rest)
    if action == "render":
        return _render(rest)
    if action == "env":
        print(envs.ensure_env())
        return 0
    print(__doc__, file=sys.stderr)
    return 2 if action not in ("-h", "--help") else 0


def _server_args(args: argparse.Namespace, storage: str) -> list[str]:
    out: list[str] = []
    for flag in _FLAGS:
        value = getattr(args, flag, None)
        if value not in (None, ""):
            out += [f"--{flag}", str(value)]
    out += ["--storage_uri", storage, args.kind]
    if getattr(args, "drift_batch_size", None) is not None and args.kind == "DriftDetector":
        out += ["--drift_batch_size", str(args.drift_batch_size)]
    return out


def _serve(words: list[str]) -> int:
    parse = server_parser()
    parse.prog = "seldon-mesh detector serve"
    args = parse.parse_args(words)
    from model_runtime.errors import LoadError
    from model_runtime.storage import fetch

    try:
        local = fetch(str(args.storage_uri))
    except LoadError as error:
        raise CliError(f"--storage_uri: {error}") from error
    argv, env = envs.command(_server_args(args, str(local)))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)  # the server takes over this process: signals reach it directly


def _render(words: list[str]) -> int:
    parse = server_parser()
    parse.prog = "seldon-mesh detector render"
    parse.add_argument("--name", required=True, help="the Deployment and Service name")
    parse.add_argument("-n", "--namespace", default="default")
    parse.add_argument("--replicas", type=int, default=1)
    parse.add_argument("--image", help="the detector server's image (default: the render settings')")
    parse.add_argument("--env-secret-ref-name", default="", help="Secret with the storage credentials")
    args = parse.parse_args(words)
    try:
        spec = DetectorSpec(
            name=args.name,
            namespace=args.namespace,
            kind=args.kind,
            storage_uri=str(args.storage_uri),
            reply_url=args.reply_url,
            event_type=args.event_type,
            event_source=args.event_source,
            protocol=args.protocol or "",
            drift_batch_size=getattr(args, "drift_batch_size", None),  # only DriftDetector has it
            model_name=args.model_name if args.model_name != "model" else "",
            replicas=args.replicas,
            env_secret_ref_name=args.env_secret_ref_name,
        )
    except ValueError as error:
        raise CliError(str(error)) from error
    settings = RenderSettings(**({"detector_image": args.image} if args.image else {}))
    sys.stdout.write(to_yaml_stream(render_detector(spec, settings)))
    print(
        f"a node's logger sends here with: logger: {{mode: request, url: {detector_url(spec)}}}",
        file=sys.stderr,
    )
    return 0
