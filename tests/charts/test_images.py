"""docker/: one Dockerfile per image the chart and the renderings name, read (Docker cannot run here):
a pinned base, a numeric non-root USER, an ENTRYPOINT that exists in the image, one shared build stage,
and the names in docker/README.md matching RenderSettings' defaults and the chart's values."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from mesh.render import RenderSettings, render
from tests.charts.helm import CHART
from tests.charts.test_rbac import corpus

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
IMAGES = ("runtime", "extproc", "storage-initializer", "operator")
Instruction = tuple[str, str]


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


def stages(path: Path) -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for keyword, args in instructions(path):
        if keyword == "FROM":
            found.append([])
        assert found, f"{path}: {keyword} before FROM"
        found[-1].append((keyword, args))
    return found


def readme_table() -> dict[str, dict[str, str]]:
    """image -> row of docker/README.md's table."""
    rows = [line for line in (DOCKER / "README.md").read_text().splitlines() if line.startswith("| `")]
    header = ["image", "dockerfile", "entrypoint", "extras", "named_by"]
    table = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        entry = dict(zip(header, cells, strict=True))
        table[entry["image"].strip("`")] = entry
    return table


def repository(image: str) -> str:
    return image.rsplit(":", 1)[0]


@pytest.mark.parametrize("name", IMAGES)
def test_dockerfile_is_small_non_root_and_pinned(name: str) -> None:
    path = DOCKER / name / "Dockerfile"
    built = stages(path)
    assert len(built) >= 2, "multi-stage: build tools stay out of the image"
    for stage in built:
        base = stage[0][1].split()[0]
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base  # a tag, never latest
    final = dict(built[-1])
    users = [args for keyword, args in built[-1] if keyword == "USER"]
    assert users, "the image must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: numeric and not root"
    assert "ENTRYPOINT" in final and json.loads(final["ENTRYPOINT"])
    assert not any(keyword in ("ADD",) for keyword, _ in built[-1])
    assert not any("pip install" in args for keyword, args in built[-1] if keyword == "RUN")
    text = path.read_text()
    assert "PIP_NO_CACHE_DIR=1" in text
    assert "HEALTHCHECK" not in final and "No HEALTHCHECK:" in text  # the reason is written down


def test_every_image_shares_one_build_stage() -> None:
    def build_stage(name: str) -> list[Instruction]:
        return [i for i in stages(DOCKER / name / "Dockerfile")[0] if not i[1].startswith("EXTRAS=")]

    first = build_stage(IMAGES[0])
    for name in IMAGES[1:]:
        assert build_stage(name) == first, name


def test_entrypoints_exist_in_the_images() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    table = readme_table()
    for image, row in table.items():
        name = row["dockerfile"].strip("`").split("/")[1]
        final = dict(stages(DOCKER / name / "Dockerfile")[-1])
        entrypoint = json.loads(final["ENTRYPOINT"])
        if entrypoint[0] == "python":
            assert entrypoint[1] == "-m", entrypoint
            module = ROOT / entrypoint[2].replace(".", "/")
            assert module.with_suffix(".py").is_file() or (module / "__main__.py").is_file(), entrypoint
        else:
            assert entrypoint[0] in scripts, entrypoint
        assert row["entrypoint"].split("`")[1] == " ".join(entrypoint), image
        extras = row["extras"]
        arg = next(args for keyword, args in stages(DOCKER / name / "Dockerfile")[0] if keyword == "ARG")
        expected = "" if extras == "(core)" else f"[{extras.strip('`')}]"
        assert arg == f'EXTRAS="{expected}"', (image, arg)
        optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        assert all(extra in optional for extra in expected.strip("[]").split(",") if extra)


def test_the_names_match_the_renderings_and_the_chart() -> None:
    table = readme_table()
    assert sorted(row["dockerfile"].strip("`") for row in table.values()) == sorted(
        f"docker/{name}/Dockerfile" for name in IMAGES
    )
    defaults = RenderSettings()
    for image in (defaults.runtime_image, defaults.extproc_image, defaults.storage_initializer_image):
        assert repository(image) in table, image
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart_images = {
        "runtime.image": values["runtime"]["image"]["repository"],
        "extproc.image": values["extproc"]["image"]["repository"],
        "storageInitializer.image": values["storageInitializer"]["image"]["repository"],
        "operator.image": values["operator"]["image"]["repository"],
        "gateway.controller.image": values["gateway"]["controller"]["image"]["repository"],
    }
    for key, repo in chart_images.items():
        assert repo in table, (key, repo)
        assert f"chart `{key}`" in table[repo]["named_by"] or f"`{key}`" in table[repo]["named_by"], (
            key,
            repo,
        )
    # each image's title label names it
    for repo, row in table.items():
        name = row["dockerfile"].strip("`").split("/")[1]
        assert f'org.opencontainers.image.title="{repo}"' in (DOCKER / name / "Dockerfile").read_text()


def test_the_build_context_holds_the_wheel_and_nothing_else() -> None:
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert ignored[0] == "*"  # deny by default, then let through
    allowed = {line[1:] for line in ignored if line.startswith("!")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    extra = allowed - packages - {"pyproject.toml", "README.md"}
    assert not [name for name in extra if (ROOT / name).exists()], (
        extra
    )  # a package ahead of pyproject is fine
    assert packages <= allowed, "a package of the wheel is missing from .dockerignore's allowlist"
    # the protobuf code is generated in the build, never copied from a developer's tree
    assert {"generated/**/*_pb2.py", "generated/**/*_pb2_grpc.py"} <= set(ignored)
    copies = [args for keyword, args in stages(DOCKER / "runtime" / "Dockerfile")[0] if keyword == "COPY"]
    assert copies == [". ."]


def _runs(command: list[str], scripts: dict[str, str]) -> bool:
    if command[:2] == ["python", "-m"]:
        module = ROOT / command[2].replace(".", "/")
        return module.with_suffix(".py").is_file() or (module / "__main__.py").is_file()
    return command[0] in scripts or command[0] == "sleep"  # sleep: coreutils, in the slim base


def test_what_the_renderings_run_in_our_images_is_there() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    settings = RenderSettings()
    ours = {settings.runtime_image, settings.extproc_image, settings.storage_initializer_image}
    seen = set()
    for deployment in corpus():
        for manifest in render(deployment, settings):
            if manifest["kind"] != "Deployment":
                continue
            pod = manifest["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                if container["image"] not in ours:
                    continue
                seen.add(container["image"])
                assert _runs(container["command"], scripts), container["command"]
                pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
                assert pre_stop is None or _runs(pre_stop, scripts), pre_stop
    assert seen == ours
