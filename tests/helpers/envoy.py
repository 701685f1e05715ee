"""A thin test wrapper over `mesh.local.envoy.EnvoyProcess`: an Envoy bootstrapped to a given xDS port."""

from __future__ import annotations

from pathlib import Path

from mesh.local.envoy import EnvoyProcess
from tests.helpers.ports import free_port
from xds_controller.bootstrap import render_bootstrap
from xds_controller.translate import Upstream

__all__ = ["envoy_for", "free_port"]


def envoy_for(node_id: str, xds_port: int, workdir: Path, log_level: str = "warning") -> EnvoyProcess:
    """An unstarted Envoy for `node_id`, admin on a port of its choosing, two workers."""
    bootstrap = render_bootstrap(node_id, Upstream("127.0.0.1", xds_port), admin_port=0)
    return EnvoyProcess(bootstrap, workdir, log_level=log_level, concurrency=2, stop_grace_s=5.0)
