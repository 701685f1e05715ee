"""Reading manifests from YAML/JSON text, files and folders, with errors that say which document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh.spec import SpecError, load_path, parse_documents, read_documents, read_path

from .manifests import SPECS, iris, sample

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n"


def _named(name: str) -> dict[str, Any]:
    manifest = iris()
    manifest["metadata"]["name"] = name
    return manifest


def _errors(text: str, source: str = "<input>") -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        parse_documents(text, source)
    return [(e.source, e.path) for e in caught.value.errors]


def test_multi_document_yaml_with_empty_documents() -> None:
    text = "---\n" + yaml.safe_dump(_named("one")) + "---\n---\n" + yaml.safe_dump(_named("two"))
    assert [d.metadata.name for d in parse_documents(text)] == ["one", "two"]


def test_json_object_and_json_list() -> None:
    assert parse_documents(json.dumps(_named("one")))[0].metadata.name == "one"
    listing = {"apiVersion": "v1", "kind": "List", "items": [_named("one"), _named("two")]}
    assert [d.metadata.name for d in parse_documents(json.dumps(listing))] == ["one", "two"]


def test_empty_text_has_no_deployments() -> None:
    assert parse_documents("") == []
    assert parse_documents("# only a comment\n---\n") == []


def test_errors_from_every_document_name_the_document() -> None:
    bad_name = _named("Bad")
    bad_traffic = _named("ok")
    bad_traffic["spec"]["predictors"][0]["traffic"] = 20
    text = yaml.safe_dump_all([_named("fine"), bad_name, bad_traffic])
    assert _errors(text, "iris.yaml") == [
        ("iris.yaml#2", "metadata.name"),
        ("iris.yaml#3", "spec.predictors[0].traffic"),
    ]


def test_single_document_errors_carry_the_bare_source() -> None:
    assert _errors(yaml.safe_dump(_named("Bad")), "iris.yaml") == [("iris.yaml", "metadata.name")]


def test_list_item_errors_are_prefixed_with_their_item() -> None:
    listing = {"kind": "List", "items": [_named("fine"), _named("Bad")]}
    assert _errors(json.dumps(listing), "list.json") == [("list.json", "items[1].metadata.name")]


def test_str_of_the_error_names_source_and_path() -> None:
    with pytest.raises(SpecError) as caught:
        parse_documents(yaml.safe_dump_all([_named("fine"), _named("Bad")]), "iris.yaml")
    assert "iris.yaml#2: metadata.name: 'Bad' is not a DNS-1123 label" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("a: [1, 2\n", "invalid YAML"), ('{"kind": ', "invalid JSON"), ("- just\n- a list\n", "expected")],
)
def test_syntax_errors_and_non_objects(text: str, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_documents(text, "x.yaml")
    [error] = caught.value.errors
    assert error.source == "x.yaml"
    assert fragment in error.message


def test_other_kinds_are_skipped_with_a_note_unless_asked_not_to() -> None:
    text = CONFIGMAP + "---\n" + yaml.safe_dump(_named("one"))
    assert [d.metadata.name for d in parse_documents(text)] == ["one"]
    loaded = read_documents(text, "mixed.yaml")
    assert [str(s) for s in loaded.skipped] == [
        f"mixed.yaml#1: skipped ConfigMap {loaded.skipped[0].name!r} (not a SeldonDeployment)"
    ]
    with pytest.raises(SpecError) as caught:
        parse_documents(text, "mixed.yaml", skip_other_kinds=False)
    assert [(e.source, e.path) for e in caught.value.errors] == [("mixed.yaml#1", "kind")]


def test_the_same_deployment_twice_is_an_error() -> None:
    text = yaml.safe_dump_all([_named("one"), _named("one")])
    assert _errors(text, "dup.yaml") == [("dup.yaml#2", "metadata.name")]


def test_load_a_file() -> None:
    [deployment] = load_path(SPECS / "iris.yaml")
    assert deployment.key == ("seldon", "iris-model")


def test_load_a_folder_sorted_and_skipping_other_kinds(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text(yaml.safe_dump(_named("bee")))
    (tmp_path / "a.json").write_text(json.dumps(_named("ay")))
    (tmp_path / "c.yaml").write_text(CONFIGMAP + "---\n" + yaml.safe_dump(_named("sea")))
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "d.yaml").write_text(yaml.safe_dump(_named("dee")))
    assert [d.metadata.name for d in load_path(tmp_path)] == ["ay", "bee", "sea"]


def test_load_a_folder_reports_errors_from_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(_named("Bad")))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(iris(protocol="nope")))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_named("good")))
    with pytest.raises(SpecError) as caught:
        load_path(tmp_path)
    assert [(Path(e.source).name, e.path) for e in caught.value.errors] == [
        ("a.yaml", "metadata.name"),
        ("b.yaml", "spec.protocol"),
    ]


def test_a_file_of_another_kind_holds_no_deployment(tmp_path: Path) -> None:
    path = tmp_path / "configmap.yaml"
    path.write_text(CONFIGMAP)
    assert load_path(path) == []
    assert [s.kind for s in read_path(path).skipped] == ["ConfigMap"]


def test_an_object_of_seldons_group_with_another_kind_is_an_error() -> None:
    text = yaml.safe_dump({**_named("one"), "kind": "SeldonDeploymnet"})
    with pytest.raises(SpecError) as caught:
        parse_documents(text, "typo.yaml")
    assert [e.path for e in caught.value.errors] == ["kind"]


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_path(tmp_path / "absent.yaml")


def test_every_sample_manifest_loads() -> None:
    names = {d.metadata.name for d in load_path(SPECS)}
    assert names == {sample(p.name)["metadata"]["name"] for p in SPECS.glob("*.yaml")}


def test_unknown_fields_are_warnings_by_path_and_change_nothing() -> None:
    manifest = _named("one")
    manifest["spec"]["predictors"][0]["grahp"] = {"name": "typo"}
    manifest["spec"]["replica"] = 2
    manifest["metadata"]["finalizers"] = ["kept"]  # ObjectMeta: all of it is legal
    manifest["spec"]["predictors"][0]["componentSpecs"] = [
        {"spec": {"containers": [{"name": "m", "tty": True}]}}
    ]
    loaded = read_documents(yaml.safe_dump(manifest), "typo.yaml")
    assert sorted(str(w) for w in loaded.warnings) == [
        "typo.yaml: spec.predictors[0].grahp: unknown field, ignored",
        "typo.yaml: spec.replica: unknown field, ignored",
    ]
    assert [d.metadata.name for d in loaded.deployments] == ["one"]


def test_seldon_annotations_with_no_effect_or_misspelt_are_named() -> None:
    manifest = _named("one")
    manifest["metadata"]["annotations"] = {
        "seldon.io/engine-separate-pod": "true",
        "seldon.io/rest-timout": "100",
        "seldon.io/rest-timeout": "100",
        "prometheus.io/scrape": "true",
    }
    loaded = read_documents(yaml.safe_dump(manifest), "a.yaml")
    assert sorted(str(w) for w in loaded.warnings) == [
        'a.yaml: metadata.annotations["seldon.io/engine-separate-pod"]: has no effect: seldon-mesh runs no '
        "engine pod: Envoy routes, extproc runs graphs",
        'a.yaml: metadata.annotations["seldon.io/rest-timout"]: not an annotation seldon-mesh reads, ignored',
    ]
