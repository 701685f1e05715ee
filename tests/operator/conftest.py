"""The emulated cluster (kmock's KubernetesEmulator with the server behaviours in `cluster.Cluster`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from kmock._internal import apps
from lightkube import AsyncClient, KubeConfig
from lightkube.config.models import Cluster as ClusterConfig
from lightkube.config.models import User

from tests.operator.cluster import Cluster


@pytest_asyncio.fixture()
async def cluster() -> AsyncIterator[Cluster]:
    async with Cluster() as emulator, apps.Server(emulator):
        emulator.declare()
        yield emulator


@pytest_asyncio.fixture()
async def api(cluster: Cluster) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(KubeConfig.from_one(cluster=ClusterConfig(server=str(cluster.url)), user=User()))
    yield client
    await client.close()


@pytest_asyncio.fixture()
async def no_cluster() -> AsyncIterator[AsyncClient]:
    """A client of no API server (port 1 refuses): for code that must not call the API, any call fails."""
    client = AsyncClient(KubeConfig.from_one(cluster=ClusterConfig(server="http://127.0.0.1:1"), user=User()))
    yield client
    await client.close()
