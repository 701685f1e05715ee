"""docker/: the images the chart and the renderings name, read (Docker cannot run here): pinned bases, a
numeric non-root USER, an ENTRYPOINT that exists in the image, each target's extras and environments,
and the names in docker/README.md matching RenderSettings' defaults and the chart's values."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mesh.render import RenderSettings, render
from mesh.render.detectors import DetectorSpec, render_detector
from mesh.spec import SeldonDeployment, parse_deployment
from model_runtime.runtimes import tensorflow_env
from tests.charts.helm import CHART
from tests.charts.test_rbac import corpus

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
BASE = re.compile(r"python:3\.11\.\d+-slim-bookworm")  # a patch release, never latest
VENV = "/opt/seldon-mesh"  # seldon-mesh's own virtualenv in docker/Dockerfile's images
Instruction = tuple[str, str]


@dataclass(frozen=True)
class Stage:
    name: str  # "" for a stage without AS
    base: str  # an image, or an earlier stage's name
    instructions: tuple[Instruction, ...]


def instructions(path: Path) -> list[Instruction]:
    """(KEYWORD, arguments) per instruction: comments dropped, continuation lines joined."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path}: a continuation runs off the end"
    return out


def stages(path: Path) -> list[Stage]:
    found: list[tuple[str, str, list[Instruction]]] = []
    for keyword, args in instructions(path):
        if keyword == "FROM":
            words = args.split()
            found.append((words[2] if len(words) == 3 and words[1].upper() == "AS" else "", words[0], []))
            continue
        assert found, f"{path}: {keyword} before FROM"
        found[-1][2].append((keyword, args))
    return [Stage(name, base, tuple(body)) for name, base, body in found]


def chain(path: Path, target: str) -> list[Stage]:
    """The stages an image is built from, its base image's first: `target` "" is the last stage."""
    named = {stage.name: stage for stage in stages(path) if stage.name}
    stage = named[target] if target else stages(path)[-1]
    out = [stage]
    while stage.base in named:
        stage = named[stage.base]
        out.insert(0, stage)
    return out


def layers(path: Path, target: str) -> list[Instruction]:
    return [instruction for stage in chain(path, target) for instruction in stage.instructions]


def last(path: Path, target: str, keyword: str) -> str:
    found = [args for key, args in layers(path, target) if key == keyword]
    assert found, (path, target, keyword)
    return found[-1]


def env_of(path: Path, target: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in layers(path, target):
        if keyword == "ENV":
            env.update(pair.partition("=")[::2] for pair in args.split())
    return env


def copies(path: Path, target: str) -> dict[str, str]:
    """destination -> the stage a `COPY --from` takes it from."""
    out = {}
    for keyword, args in layers(path, target):
        if keyword == "COPY" and args.startswith("--from="):
            source, _src, dest = args.split()
            out[dest] = source.removeprefix("--from=")
    return out


@dataclass(frozen=True)
class Row:
    image: str
    dockerfile: Path
    target: str  # "" for the last stage
    entrypoint: str
    extras: str
    named_by: str


def readme_table() -> dict[str, Row]:
    """image -> row of docker/README.md's table."""
    table = {}
    for line in (DOCKER / "README.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        image, dockerfile, target, entrypoint, extras, named_by = (
            c.strip() for c in line.strip("|").split("|")
        )
        target = target.strip("`") if target.startswith("`") else ""
        table[image.strip("`")] = Row(
            image.strip("`"), ROOT / dockerfile.strip("`"), target, entrypoint, extras, named_by
        )
    return table


ROWS = readme_table()


def repository(image: str) -> str:
    return image.rsplit(":", 1)[0]


def test_the_table_lists_every_image_the_dockerfiles_build() -> None:
    built = set()
    for path in [DOCKER / "Dockerfile", *sorted(DOCKER.glob("*/Dockerfile"))]:
        every = stages(path)
        images = {s.name for s in every if s.name and any(k == "ENTRYPOINT" for k, _ in layers(path, s.name))}
        built |= {(path, name) for name in images} if every[-1].name else {(path, "")}
    assert built == {(row.dockerfile, row.target) for row in ROWS.values()}


@pytest.mark.parametrize("image", sorted(ROWS))
def test_every_image_is_small_non_root_and_pinned(image: str) -> None:
    row = ROWS[image]
    for stage in stages(row.dockerfile):  # every base is a pinned python image or an earlier stage
        assert BASE.fullmatch(stage.base) or stage.base in {s.name for s in stages(row.dockerfile)}, stage
    built = layers(row.dockerfile, row.target)
    uid = last(row.dockerfile, row.target, "USER").split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {uid}: numeric and not root"
    assert json.loads(last(row.dockerfile, row.target, "ENTRYPOINT"))
    # multi-stage: the image only copies environments built elsewhere (no compilers, no pip, no ADD)
    assert copies(row.dockerfile, row.target)
    assert not [keyword for keyword, _ in built if keyword in ("RUN", "ADD")], image
    assert env_of(row.dockerfile, row.target)["HOME"] == "/tmp"  # writable under a read-only root
    text = row.dockerfile.read_text()
    assert "PIP_NO_CACHE_DIR=1" in text
    assert not [keyword for keyword, _ in instructions(row.dockerfile) if keyword == "HEALTHCHECK"]
    title = f'org.opencontainers.image.title="{image}"'
    assert any(
        k == "LABEL" and title in args for k, args in chain(row.dockerfile, row.target)[-1].instructions
    )


def _runs(command: list[str], row: Row) -> bool:
    """Whether the image of `row` has `command`: a script of seldon-mesh's venv, a module of the package
    its environment holds (ours, or only the copied one in an image of its own), or coreutils' sleep."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    own_venv = VENV in copies(row.dockerfile, row.target)
    if command[:2] == ["python", "-m"]:
        module = ROOT / command[2].replace(".", "/")
        exists = module.with_suffix(".py").is_file() or (module / "__main__.py").is_file()
        if own_venv:
            return exists
        package = command[2].split(".")[0]
        built = [layers(row.dockerfile, stage) for stage in copies(row.dockerfile, row.target).values()]
        sources = {args for made in built for keyword, args in made if keyword == "COPY"}
        return exists and f"{package} {package}" in sources
    return command[0] == "sleep" or (own_venv and command[0] in scripts)


@pytest.mark.parametrize("image", sorted(ROWS))
def test_entrypoints_and_extras(image: str) -> None:
    row = ROWS[image]
    entrypoint = json.loads(last(row.dockerfile, row.target, "ENTRYPOINT"))
    assert _runs(entrypoint, row), entrypoint
    assert row.entrypoint.split("`")[1] == " ".join(entrypoint), image
    venv = copies(row.dockerfile, row.target).get(VENV)
    if row.extras == "(its own env)":
        assert venv is None, "an image of its own holds none of seldon-mesh's dependencies"
        return
    assert venv, image
    installs = [
        match
        for keyword, args in layers(row.dockerfile, venv)
        if keyword == "RUN"
        for match in re.findall(r'pip install "\.(\[[\w,]*\])?"', args)
    ]
    expected = "" if row.extras == "(core)" else f"[{row.extras.strip('`')}]"
    assert installs and installs[-1] == expected, (image, installs)
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert all(extra in optional for extra in expected.strip("[]").split(",") if extra)


def test_the_runtimes_carry_tensorflows_environment() -> None:
    """TENSORFLOW_SERVER's interpreter is baked in (made by tensorflow_env), never built in a pod."""
    for row in (ROWS["seldonio/seldon-mesh-runtime"], ROWS["seldonio/seldon-mesh-runtime-huggingface"]):
        python = Path(env_of(row.dockerfile, row.target)[tensorflow_env.PYTHON_VARIABLE])
        root = python.parent.parent
        assert python == root / "bin" / "python"
        made_in = copies(row.dockerfile, row.target)[str(root)]
        runs = [args for keyword, args in chain(row.dockerfile, made_in)[-1].instructions if keyword == "RUN"]
        envs = f"{tensorflow_env.ENVS_VARIABLE}={root.parent}"
        assert runs == [f"{envs} {VENV}/bin/python -m model_runtime.runtimes.tensorflow_setup"], runs
        assert root.name == "tensorflow"  # tensorflow_env.tensorflow_python(): envs_dir() / "tensorflow"


def test_the_huggingface_runtime_takes_torchs_cpu_build() -> None:
    row = ROWS["seldonio/seldon-mesh-runtime-huggingface"]
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (torch,) = [pin for pin in optional["huggingface"] if pin.startswith("torch")]
    venv = copies(row.dockerfile, row.target)[VENV]
    runs = " ".join(
        args for keyword, args in chain(row.dockerfile, venv)[-1].instructions if keyword == "RUN"
    )
    cpu = f'pip install --index-url https://download.pytorch.org/whl/cpu "{torch}"'
    assert cpu in runs and runs.index(cpu) < runs.index('pip install ".[all,cloud,huggingface]"')
    # the default runtime does not carry torch
    runtime = ROWS["seldonio/seldon-mesh-runtime"]
    assert "huggingface" not in " ".join(
        a for _, a in layers(runtime.dockerfile, copies(runtime.dockerfile, runtime.target)[VENV])
    )


def test_the_explainer_images_hold_their_environments() -> None:
    """explainer_server.env makes each image's environment: alibi's, and alibi's with TensorFlow for
    IntegratedGradients (the renderings give that explainer the second image)."""
    for image, kind in (
        ("seldonio/seldon-mesh-explainer", '""'),
        ("seldonio/seldon-mesh-explainer-tensorflow", '"IntegratedGradients"'),
    ):
        row = ROWS[image]
        ((dest, stage),) = copies(row.dockerfile, row.target).items()
        runs = " ".join(a for k, a in chain(row.dockerfile, stage)[-1].instructions if k == "RUN")
        assert f'e.ensure_env(Path("{dest}"), e.requirements_for({kind}))' in runs, runs
        assert env_of(row.dockerfile, row.target)["PATH"].startswith(f"{dest}/bin:")


def test_the_names_match_the_renderings_and_the_chart() -> None:
    defaults = RenderSettings()
    ours = [value for key, value in defaults.model_dump().items() if key.endswith("_image")]
    for image in ours:
        assert repository(image) in ROWS, image
        field = next(key for key, value in defaults.model_dump().items() if value == image)
        assert f"`RenderSettings.{field}`" in ROWS[repository(image)].named_by, image
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart_images = {
        "runtime.image": values["runtime"]["image"],
        "extproc.image": values["extproc"]["image"],
        "storageInitializer.image": values["storageInitializer"]["image"],
        "operator.image": values["operator"]["image"],
        "gateway.controller.image": values["gateway"]["controller"]["image"],
        "detector.image": values["detector"]["image"],
        "explainer.image": values["explainer"]["image"],
        "explainer.tensorflowImage": values["explainer"]["tensorflowImage"],
    }
    for key, image in chart_images.items():
        repo = image["repository"]
        assert repo in ROWS, (key, repo)
        named_by = ROWS[repo].named_by
        assert f"chart `{key}`" in named_by or f"`{key}`" in named_by, (key, repo)
    # every image is named somewhere but the Hugging Face runtime, which a cluster opts into
    unnamed = set(ROWS) - {repository(i) for i in ours} - {i["repository"] for i in chart_images.values()}
    assert unnamed == {"seldonio/seldon-mesh-runtime-huggingface"}


def test_the_build_context_holds_the_wheel_and_nothing_else() -> None:
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert ignored[0] == "*"  # deny by default, then let through
    allowed = {line[1:] for line in ignored if line.startswith("!")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    extra = allowed - packages - {"pyproject.toml", "README.md"}
    assert not [name for name in extra if (ROOT / name).exists()], extra  # a package ahead of pyproject
    assert packages <= allowed, "a package of the wheel is missing from .dockerignore's allowlist"
    # the protobuf code is generated in the build, never copied from a developer's tree
    assert {"generated/**/*_pb2.py", "generated/**/*_pb2_grpc.py"} <= set(ignored)
    context = [
        a for k, a in instructions(DOCKER / "Dockerfile") if k == "COPY" and not a.startswith("--from")
    ]
    assert context == [". ."]


def _explained() -> list[SeldonDeployment]:
    return [
        parse_deployment(
            {
                "apiVersion": "machinelearning.seldon.io/v1",
                "kind": "SeldonDeployment",
                "metadata": {"name": f"explained-{n}", "namespace": "seldon"},
                "spec": {
                    "predictors": [
                        {
                            "name": "default",
                            "graph": {
                                "name": "m",
                                "implementation": "SKLEARN_SERVER",
                                "modelUri": "gs://m/c",
                            },
                            "explainer": {"type": kind, "modelUri": "gs://m/explainer"},
                        }
                    ]
                },
            }
        )
        for n, kind in enumerate(("AnchorTabular", "IntegratedGradients"))
    ]


def test_what_the_renderings_run_in_our_images_is_there() -> None:
    settings = RenderSettings()
    rows = {row.image: row for row in ROWS.values()}
    manifests = [m for deployment in [*corpus(), *_explained()] for m in render(deployment, settings)]
    manifests += render_detector(DetectorSpec("od", "seldon", "OutlierDetector", "gs://m/od"), settings)
    seen = set()
    for manifest in manifests:
        if manifest["kind"] != "Deployment":
            continue
        pod = manifest["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            row = rows.get(repository(container["image"]))
            if row is None:
                continue
            seen.add(container["image"])
            assert _runs(container["command"], row), (row.image, container["command"])
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
            assert pre_stop is None or _runs(pre_stop, row), pre_stop
    assert seen == {value for key, value in settings.model_dump().items() if key.endswith("_image")}
