"""Train the iris classifier that `examples/iris/iris.yaml` serves, into `examples/iris/model/model.joblib`.

Run by `make run` when the model is missing; safe to run again (it overwrites the model).
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def main(out_dir: Path) -> Path:
    features, target = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, target)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.joblib"
    joblib.dump(model, path)
    return path


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "model"
    print(f"trained iris model -> {main(target)}")
