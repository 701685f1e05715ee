"""The detector server's settings, from the command line of Seldon's alibi-detect server.

`[--http_port N] [--model_name NAME] [--protocol P] --storage_uri PATH [--reply_url URL] [--event_type T]
[--event_source S] {OutlierDetector | AdversarialDetector | DriftDetector [--drift_batch_size N]}`, the
same flags with the same defaults (port 8080, model name `model`, batch size 1000), plus ours: `--host`
(the address to bind; 127.0.0.1 unless told, the cluster rendering says 0.0.0.0) and `--ce_types` (which
CloudEvent types to score: requests, since a node's logger in mode `all` sends responses too).
`RETURN_INSTANCE_SCORE` / `RETURN_FEATURE_SCORE` in the environment (`true`) ask for those scores in
every answer. Read from argv and the environment only here, at the entrypoint.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detector_server.detectors import DEFAULT_EVENT_TYPES, Kind, Options
from detector_server.events import REQUEST_TYPE
from detector_server.protocols import Protocol

DEFAULT_HTTP_PORT = 8080
DEFAULT_DRIFT_BATCH_SIZE = 1000
MAX_BODY_BYTES = 64 * 1024 * 1024  # a batch of images fits; larger bodies get 413
REPLY_TIMEOUT_S = 30.0  # a reply URL slower than this counts as down: the event is refused for a retry


@dataclass(frozen=True)
class Settings:
    kind: Kind
    storage_uri: Path  # a local folder (the storage initializer or `seldon-mesh detector` fetched it)
    http_port: int = DEFAULT_HTTP_PORT
    host: str = "127.0.0.1"
    model_name: str = "model"
    protocol: Protocol | None = None  # None: the event's Ce-Protocol, else tensorflow.http
    reply_url: str = ""
    event_type: str = ""
    event_source: str = ""
    drift_batch_size: int = DEFAULT_DRIFT_BATCH_SIZE
    ce_types: frozenset[str] = frozenset({REQUEST_TYPE})
    defaults: Options = field(default_factory=Options)

    @property
    def reply_type(self) -> str:
        return self.event_type or DEFAULT_EVENT_TYPES[self.kind]

    @property
    def reply_source(self) -> str:
        return self.event_source or f"io.seldon.serving.{self.model_name}"


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="detector_server", description="alibi-detect CloudEvents server")
    parse.add_argument("--http_port", type=int, default=DEFAULT_HTTP_PORT)
    parse.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parse.add_argument("--model_name", default="model")
    parse.add_argument("--protocol", choices=[str(p) for p in Protocol], default=None)
    parse.add_argument("--storage_uri", required=True, help="folder of a detector saved by alibi-detect")
    parse.add_argument("--reply_url", default="", help="where to POST the result as a CloudEvent")
    parse.add_argument("--event_type", default="", help="Ce-Type of the reply event")
    parse.add_argument("--event_source", default="", help="Ce-Source of the reply event")
    parse.add_argument(
        "--ce_types",
        default=REQUEST_TYPE,
        help=f"comma-separated CloudEvent types to score, * for any (default {REQUEST_TYPE})",
    )
    kinds = parse.add_subparsers(dest="kind", required=True)
    kinds.add_parser(str(Kind.OUTLIER))
    kinds.add_parser(str(Kind.ADVERSARIAL))
    drift = kinds.add_parser(str(Kind.DRIFT))
    drift.add_argument("--drift_batch_size", type=int, default=DEFAULT_DRIFT_BATCH_SIZE)
    return parse


def from_args(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    parse = parser()
    args = parse.parse_args(list(argv))
    storage = str(args.storage_uri)
    path = Path(storage.removeprefix("file://"))
    if "://" in storage and not storage.startswith("file://"):
        parse.error(
            f"--storage_uri {storage}: give a local folder; `seldon-mesh detector serve` (or the storage "
            "initializer of the cluster rendering) fetches remote URIs first"
        )
    batch = int(getattr(args, "drift_batch_size", DEFAULT_DRIFT_BATCH_SIZE))
    if batch < 1:
        parse.error("--drift_batch_size must be at least 1")
    return Settings(
        kind=Kind(args.kind),
        storage_uri=path,
        http_port=args.http_port,
        host=args.host,
        model_name=args.model_name,
        protocol=Protocol(args.protocol) if args.protocol else None,
        reply_url=args.reply_url,
        event_type=args.event_type,
        event_source=args.event_source,
        drift_batch_size=batch,
        ce_types=frozenset(t.strip() for t in str(args.ce_types).split(",") if t.strip()),
        defaults=Options(
            instance_score=environ.get("RETURN_INSTANCE_SCORE", "").strip().lower() == "true",
            feature_score=environ.get("RETURN_FEATURE_SCORE", "").strip().lower() == "true",
        ),
    )
