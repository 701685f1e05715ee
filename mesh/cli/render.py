"""`seldon-mesh render`: SeldonDeployment files in, the cluster's objects out, as one YAML stream.

What `kubectl apply -f -` takes, and what GitOps users commit. The same validation as `apply`: an invalid
spec prints every field path on stderr and nothing on stdout (exit 1), so a pipe into kubectl applies
nothing half-done.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mesh.cli.client import CliError
from mesh.render import Ingress, Manifest, RenderSettings, render
from mesh.spec import Loaded, SeldonDeployment, SpecError, read_documents, read_path


def render_command(
    filenames: Sequence[str], ingress: str, istio_gateway: str | None, settings_file: Path | None
) -> int:
    settings = _settings(settings_file, ingress, istio_gateway)
    deployments: list[SeldonDeployment] = []
    for name in filenames:
        try:
            if name == "-":
                loaded: Loaded = read_documents(sys.stdin.read(), "<stdin>")
            elif not Path(name).exists():
                raise CliError(f"{name}: no such file or folder")
            else:
                loaded = read_path(Path(name))
            deployments += loaded.deployments
            for skipped in loaded.skipped:  # kubectl applies those; we render SeldonDeployments only
                print(f"note: {skipped}", file=sys.stderr)
            for secret in loaded.secrets:  # kept by `apply` for a local envSecretRefName; kubectl's here
                print(
                    f"note: {secret.source}: skipped Secret {secret.name!r} (not a SeldonDeployment)",
                    file=sys.stderr,
                )
            for warning in loaded.warnings:
                print(f"warning: {warning}", file=sys.stderr)
        except SpecError as error:
            raise CliError(f"invalid SeldonDeployment, nothing was rendered:\n{error}") from error
    if not deployments:
        raise CliError("no SeldonDeployment found in " + ", ".join(filenames))
    manifests = [manifest for deployment in deployments for manifest in render(deployment, settings)]
    sys.stdout.write(to_yaml_stream(manifests))
    return 0


class _Dumper(yaml.SafeDumper):
    """No `&id001` anchors: every object is written out in full, as kubectl and reviewers expect."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml_stream(manifests: Sequence[Manifest]) -> str:
    """`---`-separated YAML documents, keys in the order rendered (as kubectl prints them)."""
    return "".join(
        "---\n" + yaml.dump(m, Dumper=_Dumper, sort_keys=False, default_flow_style=False) for m in manifests
    )


def _settings(path: Path | None, ingress: str, istio_gateway: str | None) -> RenderSettings:
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise CliError(f"--settings {path}: {error}") from error
        if not isinstance(loaded, dict):
            raise CliError(f"--settings {path}: expected a mapping of settings")
        raw = loaded
    raw["ingress"] = Ingress(ingress)
    if istio_gateway:
        raw["istio_gateway"] = istio_gateway
    try:
        return RenderSettings.model_validate(raw)
    except ValidationError as error:
        raise CliError(f"invalid render settings: {error}") from error
