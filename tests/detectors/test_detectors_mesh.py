"""Detectors fed by a real mesh's payload logger (issue 18): an outlier detector flags a planted outlier
and not ordinary rows, and its metrics move; a drift detector reports no drift for a batch of the training
data and drift for a shifted batch, though it was down while the first batch was logged (the payload log
delivers at least once, so it gets every event once it is up).

The detectors are real alibi-detect ones (an IForest and a KSDrift), fitted and saved by the test in the
detector environment (`detector_server.envs`, built on first use: about 2 minutes and 3 GB the first time
on a machine, then cached), and run with `seldon-mesh detector serve` as a user runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from detector_server import envs
from tests.helpers.mesh import BIN, Mesh, free_port, wait_for
from tests.observability.sink import Received, RecordingSink

pytestmark = pytest.mark.timeout(900)  # the first run on a machine builds the detector environment

GRAPHS = Path(__file__).resolve().parents[1] / "data/graphs"
MANIFEST = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: {name}}}
spec:
  protocol: {protocol}
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: model, image: example/affine:0.1, workingDir: {graphs}, env: [{{name: MODEL_NAME, value: Affine}}]}}
      graph:
        name: model
        type: MODEL
        logger: {{mode: {mode}, url: "{url}"}}
"""  # noqa: E501
READY_S = 420  # TensorFlow's import takes 15 s on an idle machine, minutes on a loaded one


@dataclass
class Detector:
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, *args: str) -> Detector:
        return self.launch(*args).wait_ready()

    def launch(self, *args: str) -> Detector:
        command = [str(BIN / "seldon-mesh"), "detector", "serve", "--http_port", str(self.port), *args]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.extra_env}
            )
        return self

    def wait_ready(self) -> Detector:
        wait_for(self._ready, READY_S, f"the detector on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            code = self.process.returncode
            raise AssertionError(f"the detector exited with {code}:\n{self.log.read_text()}")
        return httpx.get(self.url + "health/ready", timeout=5).status_code == 200

    def metrics(self) -> dict[tuple[str, str], float]:
        """(sample name, its index or outcome or drift label) -> value."""
        text = httpx.get(self.url + "v1/metrics", timeout=10).text
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                label = labels.get("index") or labels.get("outcome") or labels.get("drift") or ""
                out[(sample.name, label)] = sample.value
        return out

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Setup:
    mesh: Mesh
    replies: RecordingSink
    outlier: Detector
    adversarial: Detector
    drift: Detector
    drift_args: list[str]
    data: dict[str, list[list[float]]]

    def predict(self, name: str, puid: str, rows: list[list[float]]) -> None:
        response = httpx.post(
            f"{self.mesh.gateway}/seldon/default/{name}/api/v1.0/predictions",
            json={"data": {"ndarray": rows}},
            headers={"Seldon-Puid": puid},
            timeout=30,
        )
        assert response.status_code == 200, response.text

    def reply(self, puid: str) -> Any:
        return self.reply_any_of([puid])

    def reply_any_of(self, puids: list[str]) -> Any:
        """The reply event about one of `puids` (a drift result carries the last event of its batch's)."""
        found: list[Received] = wait_for(
            lambda: [r for r in self.replies.snapshot() if r.headers.get("Ce-Requestid") in puids],
            120,
            f"the detector's reply event about one of {puids}",
        )
        assert len(found) == 1, [json.loads(r.body) for r in found]
        return json.loads(found[0].body)


def _fitted(python: Path) -> Path:
    """The detectors fit_detectors.py saves, fitted once per version of that script (seeded: the same
    detectors each time) and kept beside the environment; a fit costs a minute of a loaded machine."""
    script = Path(__file__).with_name("fit_detectors.py")
    digest = hashlib.sha256(script.read_bytes()).hexdigest()[:16]
    cached = python.parent.parent / "test-detectors" / digest
    if (cached / "data.json").exists():
        return cached
    staging = Path(tempfile.mkdtemp(dir=cached.parent.parent))
    subprocess.run(
        [str(python), str(script), str(staging)],
        check=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging.rename(cached)
    except OSError:  # another run put them there first
        shutil.rmtree(staging, ignore_errors=True)
    return cached


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("detectors")
    fitted = _fitted(envs.ensure_env())
    for name in ("outlier", "adversarial", "drift"):
        shutil.copytree(fitted / name, folder / name)
    data = json.loads((fitted / "data.json").read_text())
    replies = RecordingSink()
    replies.start()
    scores = {"RETURN_INSTANCE_SCORE": "true"}
    outlier = Detector(free_port(), folder / "outlier.log", extra_env=scores)
    adversarial = Detector(free_port(), folder / "adversarial.log", extra_env=scores)
    drift = Detector(free_port(), folder / "drift.log")
    spec = folder / "deployments.yaml"
    spec.write_text(
        MANIFEST.format(name="scored", protocol="seldon", graphs=GRAPHS, mode="all", url=outlier.url)
        + "---"
        + MANIFEST.format(name="scored-v2", protocol="v2", graphs=GRAPHS, mode="request", url=outlier.url)
        + "---"
        + MANIFEST.format(name="drifting", protocol="seldon", graphs=GRAPHS, mode="request", url=drift.url)
        + "---"
        + MANIFEST.format(
            name="guarded", protocol="seldon", graphs=GRAPHS, mode="request", url=adversarial.url
        )
    )
    common = ["--reply_url", replies.url]
    drift_args = [*common, "--model_name", "incomecd", "--storage_uri", str(folder / "drift")]
    drift_args += ["DriftDetector", "--drift_batch_size", "20"]
    mesh = Mesh(folder / "state", free_port())
    try:
        outlier_args = ["--model_name", "incomeod", "--storage_uri", str(folder / "outlier")]
        outlier.launch(*common, *outlier_args, "OutlierDetector")  # they load while the mesh starts
        adversarial_args = ["--model_name", "guard", "--storage_uri", str(folder / "adversarial")]
        adversarial.launch(*common, *adversarial_args, "AdversarialDetector")
        mesh.start(spec)
        outlier.wait_ready()
        adversarial.wait_ready()
        body = {"data": {"ndarray": data["ordinary"][:1]}}
        unlogged = {"Seldon-Skip-Logging": "true"}  # the detectors count only the tests' own rows
        mesh.wait_state("scored-v2", "Available", timeout=120)
        mesh.wait_state("guarded", "Available", timeout=120)
        for name in ("scored", "drifting"):
            mesh.wait_state(name, "Available", timeout=120)
            url = f"{mesh.gateway}/seldon/default/{name}/api/v1.0/predictions"
            wait_for(
                lambda url=url: httpx.post(url, json=body, headers=unlogged, timeout=10).status_code == 200,
                60,
                f"{name} to answer through the gateway",
            )
        yield Setup(mesh, replies, outlier, adversarial, drift, drift_args, data)
    finally:  # every part stops, and a failed stop never hides why the setup failed
        problems: list[Exception] = []
        for stop in (mesh.stop, outlier.stop, adversarial.stop, drift.stop, replies.stop):
            try:
                stop()
            except Exception as problem:
                problems.append(problem)
        if problems and sys.exc_info()[1] is None:
            raise problems[0]


def test_an_outlier_detector_fed_by_the_logger_flags_the_planted_outlier_only(setup: Setup) -> None:
    ordinary = []
    for index, row in enumerate(setup.data["ordinary"]):
        setup.predict("scored", f"ordinary-{index}", [row])
    for index in range(len(setup.data["ordinary"])):
        reply = setup.reply(f"ordinary-{index}")
        assert reply["data"]["is_outlier"] == [0], reply
        ordinary.append(reply["data"]["instance_score"][0])
    before = setup.outlier.metrics()
    assert before[("seldon_mesh_detector_outliers_total", "")] == 0

    setup.predict("scored", "planted", setup.data["outlier"])
    reply = setup.reply("planted")
    assert reply["data"]["is_outlier"] == [1]
    assert reply["meta"]["name"] == "IForest"
    score = reply["data"]["instance_score"][0]
    assert score > max(ordinary)
    after = setup.outlier.metrics()
    assert after[("seldon_mesh_detector_outliers_total", "")] == 1
    assert after[("seldon_metric_outlier_is_outlier", "0")] == 1
    assert after[("seldon_metric_outlier_instance_score", "0")] == pytest.approx(score)
    # the logger's mode is `all`: every response event came too, and none was scored
    assert after[("seldon_mesh_detector_events_total", "scored")] >= len(ordinary) + 1
    assert after[("seldon_mesh_detector_events_total", "ignored")] >= len(ordinary) + 1


def test_a_drift_detector_tells_a_batch_of_the_training_data_from_a_shifted_one(setup: Setup) -> None:
    # the drift detector is not running yet: these events wait in the model's payload spool
    for part in range(4):
        setup.predict("drifting", f"same-{part}", setup.data["same"][part * 5 : (part + 1) * 5])
    setup.drift.start(*setup.drift_args)
    no_drift = setup.reply_any_of([f"same-{part}" for part in range(4)])
    assert no_drift["data"]["is_drift"] == 0, no_drift
    assert min(no_drift["data"]["p_val"]) > no_drift["data"]["threshold"]
    for part in range(4):
        setup.predict("drifting", f"shifted-{part}", setup.data["shifted"][part * 5 : (part + 1) * 5])
    drifted = setup.reply_any_of([f"shifted-{part}" for part in range(4)])
    assert drifted["data"]["is_drift"] == 1, drifted
    assert drifted["meta"]["name"] == "KSDrift"
    metrics = setup.drift.metrics()
    assert metrics[("seldon_mesh_detector_drift_tests_total", "false")] == 1
    assert metrics[("seldon_mesh_detector_drift_tests_total", "true")] == 1
    assert metrics[("seldon_mesh_detector_instances_total", "")] == 40
    assert metrics[("seldon_metric_drift_p_val", "0")] == pytest.approx(drifted["data"]["p_val"][0])


def test_a_v2_request_is_read_as_v2_from_the_events_ce_protocol(setup: Setup) -> None:
    row = setup.data["outlier"][0]
    request = {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
    url = f"{setup.mesh.gateway}/seldon/default/scored-v2/v2/models/model/infer"
    wait_for(lambda: httpx.post(url, json=request, timeout=30).status_code == 200, 60, "the V2 model")
    about = "Ce-Inferenceservicename"
    found: list[Received] = wait_for(
        lambda: [r for r in setup.replies.snapshot() if r.headers.get(about) == "scored-v2"],
        120,
        "the reply event about the V2 request",
    )
    assert json.loads(found[0].body)["data"]["is_outlier"] == [1]


def test_an_adversarial_detector_scores_the_logged_instances(setup: Setup) -> None:
    rows = setup.data["ordinary"]
    setup.predict("guarded", "guarded-1", rows)
    event = wait_for(
        lambda: [r for r in setup.replies.snapshot() if r.headers.get("Ce-Requestid") == "guarded-1"],
        120,
        "the adversarial detector's reply",
    )[0]
    assert event.headers["Ce-Type"] == "io.seldon.serving.inference.adversarial"
    reply = json.loads(event.body)
    assert reply["meta"]["name"] == "AdversarialAE"
    assert reply["data"]["is_adversarial"] == [0] * len(rows)  # the classifier's own kind of data
    assert len(reply["data"]["instance_score"]) == len(rows)
    metrics = setup.adversarial.metrics()
    assert metrics[("seldon_mesh_detector_instances_total", "")] == len(rows)
    assert metrics[("seldon_metric_outlier_is_adversarial", "0")] == 0
