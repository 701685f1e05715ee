"""Where the controller reads the cluster from: a `Source` lists and watches raw objects of two kinds.

`KubeSource` talks to the Kubernetes API with lightkube (in-cluster config, `KUBECONFIG`, or a server
URL); both kinds are read as generic resources, so objects stay plain dicts (no model classes built for
tens of thousands of slices). The bench and tests may feed the controller from anything else that
implements the protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from enum import StrEnum
from typing import Any, Protocol

Raw = Mapping[str, Any]


class Kind(StrEnum):
    DEPLOYMENTS = "seldondeployments"
    SLICES = "endpointslices"


class Source(Protocol):
    async def list(self, kind: Kind) -> tuple[list[Raw], str | None]:
        """Every object of `kind` and the collection's resourceVersion to watch from."""
        ...

    def watch(self, kind: Kind, resource_version: str | None) -> AsyncIterator[tuple[str, Raw]]:
        """(ADDED | MODIFIED | DELETED, object) after `resource_version`; raises when the watch breaks
        (then the controller lists again)."""
        ...

    async def close(self) -> None: ...


def _raw(obj: Any) -> Raw:
    if isinstance(obj, Mapping):
        metadata = obj.get("metadata")
        if metadata is not None and not isinstance(metadata, Mapping):
            return {**obj, "metadata": metadata.to_dict()}
        return obj
    converted: Raw = obj.to_dict()  # a lightkube model class registered for the kind elsewhere
    return converted


class KubeSource:
    """SeldonDeployments (machinelearning.seldon.io/v1) and EndpointSlices (discovery.k8s.io/v1) through
    the API server, in one namespace or all (`namespace` None)."""

    def __init__(self, namespace: str | None = None, server: str | None = None) -> None:
        from lightkube import AsyncClient, KubeConfig
        from lightkube.config.models import Cluster, User
        from lightkube.generic_resource import create_namespaced_resource

        # `server`: an API server reached without credentials (a local proxy, `kubectl proxy`, a test's)
        config = KubeConfig.from_one(cluster=Cluster(server=server), user=User()) if server else None
        self._client = AsyncClient(config=config, namespace=namespace or None)
        self._namespace = namespace or "*"  # lightkube: "*" is every namespace
        self._resources = {
            Kind.DEPLOYMENTS: create_namespaced_resource(
                "machinelearning.seldon.io", "v1", "SeldonDeployment", "seldondeployments"
            ),
            Kind.SLICES: create_namespaced_resource(
                "discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"
            ),
        }

    async def list(self, kind: Kind) -> tuple[list[Raw], str | None]:
        listing = self._client.list(self._resources[kind], namespace=self._namespace)
        items = [_raw(obj) async for obj in listing]
        try:
            version: str | None = listing.resourceVersion
        except Exception:  # lightkube's NotReadyError: an empty list sent no chunk
            version = None
        return items, version

    async def watch(self, kind: Kind, resource_version: str | None) -> AsyncIterator[tuple[str, Raw]]:
        events = self._client.watch(
            self._resources[kind], namespace=self._namespace, resource_version=resource_version
        )
        async for event, obj in events:
            yield event, _raw(obj)

    async def close(self) -> None:
        await self._client.close()
