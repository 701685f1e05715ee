"""Render a deployment's routes once per shape, then reuse the bytes for every deployment of that shape.

Thousands of deployments often differ only in their names. A deployment's route resources depend on its
spec, annotations, namespace and name; a shape is everything but the namespace and name (and their
lengths and punctuation). The first deployment of a shape is rendered three times: with itself, and with
two placeholder names of the same lengths (letters no real name holds). When substituting names into the
first placeholder rendering gives both other renderings byte for byte, the rendering is known to use the
names only verbatim, and later deployments of the shape get the placeholder bytes with their own names
put in. Same-length names keep every protobuf length prefix valid. A shape that fails the check is
rendered in full each time, as it would be without templates.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from xds_controller.translate import DeploymentView
from xds_controller.translate.model import DeploymentSpecView, MetadataView

# (namespace letters, name letters): upper case, which Kubernetes names never hold
_PLACEHOLDERS = (("XZ", "QJ"), ("VW", "KY"))
_LETTERS = frozenset("".join(a + b for a, b in _PLACEHOLDERS))
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


class Parts(NamedTuple):
    """What a renderer makes of one deployment: serialized resources and names (resource names and the
    clusters they refer to)."""

    blobs: tuple[bytes, ...]
    names: tuple[str, ...]
    clusters: frozenset[str]


def _placeholder(letters: str, length: int) -> str:
    return "".join(letters[i % 2] for i in range(length))


@dataclass(frozen=True)
class _Meta:
    name: str
    namespace: str


class _Renamed:
    """A deployment view with another namespace and name; everything else is the original's."""

    def __init__(self, deployment: DeploymentView, namespace: str, name: str) -> None:
        self._deployment = deployment
        self._metadata = _Meta(name, namespace)

    @property
    def metadata(self) -> MetadataView:
        return self._metadata

    @property
    def spec(self) -> DeploymentSpecView:
        return self._deployment.spec

    @property
    def annotations(self) -> Mapping[str, str]:
        return self._deployment.annotations

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._deployment, attribute)


class _Template:
    """A shape's rendering with placeholder names, filled in by plain `replace` (runs per deployment).

    The blobs are kept joined by NUL bytes (which no placeholder holds, so no match spans two of them),
    and the names and clusters by NUL characters: a fill is two `replace` calls per kind, and since
    names keep their lengths, the blobs are cut back apart at fixed offsets."""

    __slots__ = (
        "_blobs",
        "_clusters",
        "_clusters_from",
        "_cut",
        "_name_bytes",
        "_names",
        "_ns_bytes",
        "name",
        "namespace",
        "parts",
    )

    def __init__(self, parts: Parts, namespace: str, name: str) -> None:
        self.parts, self.namespace, self.name = parts, namespace, name
        self._ns_bytes, self._name_bytes = namespace.encode(), name.encode()
        self._blobs = b"\0".join(parts.blobs)
        cuts, start = [], 0
        for blob in parts.blobs:
            cuts.append(slice(start, start + len(blob)))
            start += len(blob) + 1
        # a dummy last cut, so that one blob also comes back as a tuple
        self._cut = operator.itemgetter(*cuts, slice(0, 0)) if cuts else None
        self._names = "\0".join(parts.names) if parts.names else None
        # the clusters named are often exactly the resources named but the first (a route configuration)
        # or all of them: then they come from the filled names
        self._clusters_from: int | None = next(
            (i for i in (1, 0) if parts.clusters == frozenset(parts.names[i:])), None
        )
        self._clusters = "\0".join(sorted(parts.clusters)) if parts.clusters else None

    def fill(self, namespace: str, name: str) -> Parts:
        """The shape's parts for `namespace` and `name` (same lengths as the placeholders, no NUL)."""
        ns_from, name_from = self.namespace, self.name
        blobs = self._blobs.replace(self._ns_bytes, namespace.encode()).replace(
            self._name_bytes, name.encode()
        )
        names, clusters, clusters_from = self._names, self._clusters, self._clusters_from
        filled = (
            tuple(names.replace(ns_from, namespace).replace(name_from, name).split("\0")) if names else ()
        )
        if clusters_from is not None:
            named = frozenset(filled[clusters_from:])
        elif clusters:
            named = frozenset(clusters.replace(ns_from, namespace).replace(name_from, name).split("\0"))
        else:
            named = frozenset()
        return Parts(self._cut(blobs)[:-1] if self._cut is not None else (), filled, named)


def _punctuation(value: str) -> str:
    if value.isalnum() and value.islower():  # ASCII (checked first): only [a-z0-9], and a letter
        return ""
    return "".join(sorted(set(value).difference(_WORD_CHARS)))


def _spec_key(spec: object) -> object:
    """The spec itself when its type hashes by content (a frozen dataclass or model: hashing and
    comparing its fields is far cheaper than its repr), else its repr (an identity hash would keep a
    template for an object mutated since); tagged so the two kinds of key never compare equal. A spec
    of a hashing type that still cannot be hashed (a list inside) is keyed by `_repr_key` on lookup."""
    if type(spec).__hash__ is not object.__hash__:
        return ("spec", spec)
    return ("repr", repr(spec))


def _repr_key(key: tuple[object, ...]) -> tuple[object, ...]:
    """`key` with its spec (the `_spec_key` at index -2) keyed by repr instead."""
    spec_key = key[-2]
    assert isinstance(spec_key, tuple)
    return (*key[:-2], ("repr", repr(spec_key[1])), key[-1])


_UNSEEN = object()


class Templates:
    """Per-shape templates in front of `render`. Not thread-safe (one builder owns it)."""

    def __init__(self, render: Callable[[DeploymentView], Parts]) -> None:
        self._render = render
        self._templates: dict[tuple[object, ...], _Template | None] = {}
        self.filled = 0  # deployments served from a template (for tests and benchmarks)

    def __call__(self, deployment: DeploymentView) -> Parts:
        meta = deployment.metadata
        namespace, name = meta.namespace, meta.name
        both = namespace + name
        # non-ASCII: a character's length in bytes varies, and same-length names must stay so in bytes
        if not namespace or not name or not both.isascii() or "\0" in both or _LETTERS.intersection(both):
            return self._render(deployment)
        key = self._shape(deployment, namespace, name)
        if key is None:
            return self._render(deployment)
        try:
            template = self._templates.get(key, _UNSEEN)
        except TypeError:  # the spec's type hashes by content, yet this one cannot be hashed
            key = _repr_key(key)
            try:
                template = self._templates.get(key, _UNSEEN)
            except TypeError:
                return self._render(deployment)
        if template is None:
            return self._render(deployment)
        if isinstance(template, _Template):
            self.filled += 1
            return template.fill(namespace, name)
        parts = self._render(deployment)
        self._templates[key] = self._learn(deployment, namespace, name, parts)
        return parts

    @staticmethod
    def _shape(deployment: DeploymentView, namespace: str, name: str) -> tuple[object, ...] | None:
        try:
            annotations = tuple(sorted(deployment.annotations.items()))
            return (
                type(deployment),
                len(namespace),
                len(name),
                _punctuation(namespace),
                _punctuation(name),
                _spec_key(deployment.spec),
                annotations,
            )
        except TypeError:
            return None

    def _learn(self, deployment: DeploymentView, namespace: str, name: str, parts: Parts) -> _Template | None:
        renders: list[_Template] = []
        for ns_letters, name_letters in _PLACEHOLDERS:
            ns_holder = _placeholder(ns_letters, len(namespace))
            name_holder = _placeholder(name_letters, len(name))
            rendered = self._render(_Renamed(deployment, ns_holder, name_holder))
            renders.append(_Template(rendered, ns_holder, name_holder))
        template, other = renders
        if template.fill(namespace, name) != parts:
            return None
        if template.fill(other.namespace, other.name) != other.parts:
            return None
        return template
