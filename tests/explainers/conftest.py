"""A mesh serving the iris classifier with explainers, as a user writes them:
- `iris-anchors`: AnchorTabular fitted at start from `initParameters` (feature names, the training set);
- `iris-shap`: a KernelShap explainer the user fitted and saved (`modelUri`, alibi's save format);
- `iris-v2`: `protocol: v2`, KernelShap from `initParameters`, explained over V2;
- `iris-down`: AnchorTabular whose model is an external server that is not there;
- `iris-tree`: a random forest explained by a saved TreeShap explainer (white-box: it reads the model file);
- `movies`: a scikit-learn text classifier (bag of words) explained by AnchorText (blank spacy tokenizer);
- `iris-gradients`: IntegratedGradients of a small Keras iris network (in the tensorflow environment).
The explainer environment (alibi, numpy<2) is made once by `explainer_server.env` (cached in the user's
cache folder, as `seldon-mesh up` makes it on first need); the saved explainer is fitted in it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from explainer_server.env import TENSORFLOW_REQUIREMENTS, ensure_env
from tests.helpers.mesh import Mesh, free_port

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
DEPLOYMENTS = ("iris-anchors", "iris-shap", "iris-v2", "iris-down", "iris-tree", "movies", "iris-gradients")
GOOD = [
    "a wonderful film",
    "great acting and a great story",
    "i loved it",
    "wonderful and moving",
    "a great film",
]
BAD = [
    "a terrible film",
    "awful acting and a boring story",
    "i hated it",
    "boring and awful",
    "a terrible plot",
]

MANIFEST = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: {name}
  namespace: seldon
spec:
  protocol: {protocol}
  predictors:
    - name: default
      graph:
        name: classifier
{graph}
      explainer:
{explainer}
"""
MODEL = """        implementation: SKLEARN_SERVER
        modelUri: ./model"""
FEATURE_LIST = "[" + ", ".join(f'"{f}"' for f in FEATURES) + "]"


def _write(folder: Path, name: str, explainer: str, graph: str = MODEL, protocol: str = "seldon") -> None:
    text = MANIFEST.format(name=name, protocol=protocol, graph=graph, explainer=explainer)
    (folder / f"{name}.yaml").write_text(text)


@pytest.fixture(scope="session")
def explainer_python() -> Path:
    return ensure_env()


@pytest.fixture(scope="session")
def tensorflow_python() -> Path:
    return ensure_env(requirements=TENSORFLOW_REQUIREMENTS)


@pytest.fixture(scope="session")
def explained_dir(
    tmp_path_factory: pytest.TempPathFactory, explainer_python: Path, tensorflow_python: Path
) -> Path:
    folder = tmp_path_factory.mktemp("explained")
    subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(folder / "model")], check=True)
    features, _ = load_iris(return_X_y=True)
    np.savetxt(folder / "iris.csv", features, delimiter=",")
    model_file, saved = folder / "model/model.joblib", folder / "kernel-shap"
    fit = [str(explainer_python), str(HERE / "fit_explainer.py"), "KernelShap", str(model_file), str(saved)]
    subprocess.run(fit, check=True, timeout=300)
    init = f'{{"feature_names": {FEATURE_LIST}, "training_data": "iris.csv", "seed": 0}}'
    _write(folder, "iris-anchors", f"        type: AnchorTabular\n        initParameters: '{init}'")
    _write(
        folder,
        "iris-shap",
        "        type: KernelShap\n        modelUri: ./kernel-shap\n"
        '        config:\n          nsamples: "200"',
    )
    background = features[::15].tolist()
    shap_init = f'{{"feature_names": {FEATURE_LIST}, "training_data": {background}, "seed": 0}}'
    _write(
        folder, "iris-v2", f"        type: KernelShap\n        initParameters: '{shap_init}'", protocol="v2"
    )
    down = f"""        endpoint:
          service_host: 127.0.0.1
          service_port: {free_port()}
          type: REST"""
    _write(folder, "iris-down", f"        type: AnchorTabular\n        initParameters: '{init}'", graph=down)
    (folder / "tree").mkdir()
    forest = RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0).fit(
        *load_iris(return_X_y=True)
    )
    joblib.dump(forest, folder / "tree" / "model.joblib")
    fit = [
        str(explainer_python),
        str(HERE / "fit_explainer.py"),
        "TreeShap",
        str(folder / "tree/model.joblib"),
    ]
    subprocess.run([*fit, str(folder / "tree-shap")], check=True, timeout=300)
    forest_graph = "        implementation: SKLEARN_SERVER\n        modelUri: ./tree"
    _write(folder, "iris-tree", "        type: TreeShap\n        modelUri: ./tree-shap", graph=forest_graph)
    (folder / "text").mkdir()
    words = make_pipeline(CountVectorizer(), LogisticRegression()).fit(
        GOOD + BAD, [1] * len(GOOD) + [0] * len(BAD)
    )
    joblib.dump(words, folder / "text" / "model.joblib")
    text_graph = "        implementation: SKLEARN_SERVER\n        modelUri: ./text"
    _write(
        folder,
        "movies",
        "        type: AnchorText\n        initParameters: '{\"seed\": 0}'",
        graph=text_graph,
    )
    keras = [str(tensorflow_python), str(HERE / "fit_keras.py"), str(folder / "keras")]
    subprocess.run(keras, check=True, timeout=300)
    gradients = "        type: IntegratedGradients\n        modelUri: ./keras\n"
    gradients += "        initParameters: '{\"n_steps\": 25}'"
    _write(folder, "iris-gradients", gradients)
    return folder


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, explained_dir: Path) -> Iterator[Mesh]:
    running = Mesh(tmp_path_factory.mktemp("explained-mesh") / "state", free_port()).start(explained_dir)
    try:
        for name in DEPLOYMENTS:
            running.wait_state(name, "Available", timeout=240)
        yield running
    finally:
        running.stop()
