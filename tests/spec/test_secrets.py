"""Secrets in applied files: kept (decoded) for `envSecretRefName`, their values never shown."""

from __future__ import annotations

import base64

import pytest
import yaml

from mesh.spec import SpecError, read_documents

IRIS = {
    "apiVersion": "machinelearning.seldon.io/v1",
    "kind": "SeldonDeployment",
    "metadata": {"name": "iris", "namespace": "seldon"},
    "spec": {"predictors": [{"name": "p", "graph": {"name": "m", "implementation": "SKLEARN_SERVER",
                                                     "modelUri": "s3://b/m", "envSecretRefName": "creds"}}]},
}  # fmt: skip


def _secret(**fields: object) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "seldon"},
        **fields,
    }


def test_data_is_base64_and_string_data_wins() -> None:
    data = {"A": base64.b64encode(b"from-data").decode(), "B": base64.b64encode(b"old").decode()}
    text = yaml.safe_dump_all([_secret(data=data, stringData={"B": "new"}), IRIS])
    loaded = read_documents(text, "app.yaml")
    assert [d.metadata.name for d in loaded.deployments] == ["iris"]
    assert loaded.skipped == []
    [secret] = loaded.secrets
    assert (secret.key, dict(secret.data)) == (("seldon", "creds"), {"A": "from-data", "B": "new"})
    assert "from-data" not in repr(secret) and "from-data" not in str(secret)
    assert str(secret) == "app.yaml#1: kept Secret 'creds' (A, B) for envSecretRefName"


def test_a_secret_without_namespace_is_in_default() -> None:
    secret = _secret(stringData={"K": "v"})
    secret["metadata"] = {"name": "creds"}
    assert read_documents(yaml.safe_dump(secret)).secrets[0].key == ("default", "creds")


def test_bad_values_are_errors_naming_the_key_not_the_value() -> None:
    text = yaml.safe_dump_all([_secret(data={"K": "not base64!"}, stringData={"N": 5}), IRIS])
    with pytest.raises(SpecError) as raised:
        read_documents(text, "app.yaml")
    message = str(raised.value)
    assert "data.K" in message and "stringData.N" in message and "not base64!" not in message
