"""Placeholder: being written."""

from __future__ import annotations

from mesh.render.labels import Manifest
from mesh.render.settings import RenderSettings
from mesh.spec import SeldonDeployment


def render_gateway_api(deployment: SeldonDeployment, settings: RenderSettings) -> list[Manifest]:
    return []
