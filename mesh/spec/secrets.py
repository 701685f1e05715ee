"""Kubernetes Secrets applied beside SeldonDeployments, for `envSecretRefName` on a machine with no cluster.

Seldon hands the keys of the Secret a node's `envSecretRefName` names to the storage initializer as its
environment (model storage credentials: `AWS_ACCESS_KEY_ID`, `RCLONE_CONFIG_*`, ...). Locally `up` keeps a
Secret applied in the same files and gives its keys to the node's runtime, which downloads the model
itself. As the API server does, `data` values are base64 and `stringData` values plain text, the latter
winning for a key in both. The values never appear in a repr, an error or a note.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesh.spec.deployment import DEFAULT_NAMESPACE
from mesh.spec.errors import FieldError, SpecError

SECRET_KIND = "Secret"


@dataclass(frozen=True)
class SecretDocument:
    namespace: str
    name: str
    data: Mapping[str, str] = field(repr=False)
    source: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def __str__(self) -> str:
        keys = ", ".join(sorted(self.data)) or "no keys"
        return f"{self.source}: kept Secret {self.name!r} ({keys}) for envSecretRefName"


def is_secret(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("kind") == SECRET_KIND and obj.get("apiVersion") == "v1"


def parse_secret(obj: dict[str, Any], source: str = "") -> SecretDocument:
    """The Secret's name, namespace and decoded keys; `SpecError` names each bad field (never a value)."""
    errors: list[FieldError] = []
    raw_metadata = obj.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        errors.append(FieldError("metadata.name", "a Secret needs a name", source=source))
    namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
    data: dict[str, str] = {}
    encoded = obj.get("data") or {}
    plain = obj.get("stringData") or {}
    for section, values in (("data", encoded), ("stringData", plain)):
        if not isinstance(values, dict):
            errors.append(FieldError(section, "must be a map of keys to strings", source=source))
    if errors:
        raise SpecError(errors)
    for key, value in encoded.items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            errors.append(FieldError(f"data.{key}", "is not base64 of UTF-8 text", source=source))
    for key, value in plain.items():
        if not isinstance(value, str):
            errors.append(FieldError(f"stringData.{key}", "must be a string", source=source))
            continue
        data[str(key)] = value
    if errors:
        raise SpecError(errors)
    return SecretDocument(str(namespace), str(name), data, source)
