"""Fixtures for traffic-management tests: one ADS server per module, one real Envoy per test, routed by
scope (one RouteConfiguration per deployment) as `seldon-mesh up` routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.xds_controller.harness import ControlPlane, Gateway


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    control = ControlPlane().start()
    yield control
    control.stop()


@pytest.fixture
def gateway(plane: ControlPlane, tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(plane, tmp_path / "envoy", scoped=True)
    yield gw
    gw.stop()
