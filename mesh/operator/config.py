"""The operator's configuration: its flags and environment (the chart's contract) and the render settings.

`--settings` (default `/etc/seldon-mesh/settings.yaml` when it exists, the chart's mounted ConfigMap) is
read as `seldon-mesh render --settings` reads it: a YAML mapping of `RenderSettings` fields.
`WATCH_NAMESPACE` (empty: every namespace) or `--namespace` scopes the watch, `POD_NAMESPACE` is where the
webhook Secret lives, `CONTROLLER_ID` scopes this operator to SeldonDeployments labelled with it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mesh.render import RenderSettings

DEFAULT_SETTINGS = Path("/etc/seldon-mesh/settings.yaml")
DEFAULT_CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")  # cert-manager's mount in the chart


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class OperatorConfig:
    settings: RenderSettings
    namespace: str  # "" watches every namespace
    pod_namespace: str
    controller_id: str
    webhook_host: str
    webhook_port: int
    webhook_service: str
    webhook_secret: str
    webhook_configs: tuple[str, ...]
    cert_dir: Path | None
    health_host: str
    health_port: int

    @property
    def field_manager(self) -> str:
        return f"seldon-mesh-{self.controller_id}" if self.controller_id else "seldon-mesh"

    @property
    def webhook_enabled(self) -> bool:
        return bool(self.webhook_service or self.cert_dir)


def load_settings(path: Path | None) -> RenderSettings:
    """RenderSettings from a YAML mapping of its fields (none: the defaults)."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"--settings {path}: {error}") from error
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"--settings {path}: expected a mapping of settings")
        raw = loaded or {}
    try:
        return RenderSettings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"invalid render settings in {path}: {error}") from error


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seldon-mesh operator", description="the seldon-mesh Kubernetes operator"
    )
    p.add_argument(
        "--settings", type=Path, help=f"render settings YAML (default {DEFAULT_SETTINGS} if present)"
    )
    p.add_argument(
        "--namespace", default=None, help="watch one namespace (default: $WATCH_NAMESPACE, else all)"
    )
    p.add_argument("--webhook-host", default="0.0.0.0")
    p.add_argument("--webhook-port", type=int, default=9443)
    p.add_argument(
        "--webhook-service", default="", help="the webhook's Service (enables self-made certificates)"
    )
    p.add_argument(
        "--webhook-secret", default="", help="Secret holding the webhook CA and serving certificate"
    )
    p.add_argument(
        "--webhook-config", action="append", default=[], help="webhook configuration to patch caBundle into"
    )
    p.add_argument(
        "--cert-dir", type=Path, default=None, help="serve the tls.crt/tls.key found here (cert-manager)"
    )
    p.add_argument("--health-host", default="0.0.0.0")
    p.add_argument("--health-port", type=int, default=8080)
    return p


def from_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> OperatorConfig:
    env = os.environ if env is None else env
    argv = list(argv)
    if argv[:1] == ["--"]:  # `seldon-mesh operator -- --flag ...`
        argv = argv[1:]
    args = parser().parse_args(argv)
    settings_path: Path | None = args.settings
    if settings_path is None and DEFAULT_SETTINGS.exists():
        settings_path = DEFAULT_SETTINGS
    settings = load_settings(settings_path)
    controller_id = env.get("CONTROLLER_ID", "") or settings.controller_id
    if controller_id != settings.controller_id:
        settings = settings.model_copy(update={"controller_id": controller_id})
    namespace = args.namespace if args.namespace is not None else env.get("WATCH_NAMESPACE", "")
    pod_namespace = env.get("POD_NAMESPACE", "") or _service_account_namespace() or namespace or "default"
    return OperatorConfig(
        settings=settings,
        namespace=namespace,
        pod_namespace=pod_namespace,
        controller_id=controller_id,
        webhook_host=args.webhook_host,
        webhook_port=args.webhook_port,
        webhook_service=args.webhook_service,
        webhook_secret=args.webhook_secret
        or (f"{args.webhook_service}-cert" if args.webhook_service else ""),
        webhook_configs=tuple(args.webhook_config),
        cert_dir=args.cert_dir,
        health_host=args.health_host,
        health_port=args.health_port,
    )


def _service_account_namespace() -> str:
    try:
        return Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip()
    except OSError:
        return ""
