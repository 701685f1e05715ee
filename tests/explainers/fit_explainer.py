"""Fit and save an alibi explainer the way a user does before deploying it (`Explainer.save`).

Run with the explainer environment's python (alibi is not in the mesh's venv):
`python fit_explainer.py KernelShap|TreeShap MODEL_FILE OUT_DIR`. The model is the iris classifier that
the deployment serves; the saved explainer holds no model (a black-box one gets the gateway's predictions
when the mesh loads it; TreeShap gets the model file from the predictor's modelUri).
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
from alibi.explainers import KernelShap, TreeShap
from sklearn.datasets import load_iris

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def main(kind: str, model_file: Path, out_dir: Path) -> None:
    model = joblib.load(model_file)
    features, _ = load_iris(return_X_y=True)
    background = features[::15]  # 10 rows: KernelShap asks the model for rows x samples predictions
    if kind == "KernelShap":
        explainer = KernelShap(model.predict_proba, feature_names=FEATURES, seed=0)
        explainer.fit(background)
    else:
        tree = TreeShap(model, model_output="raw", feature_names=FEATURES, task="classification")
        tree.fit(background)
        explainer = tree
    explainer.save(out_dir)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
