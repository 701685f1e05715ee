"""IntegratedGradients: white-box, on the Keras model itself (it reads gradients, not predictions).

Seldon's explainer loads the Keras model it explains; here `modelUri` names a folder holding it
(`model.keras`, `model.h5`, or a Keras SavedModel folder), and either an alibi-saved IntegratedGradients
(`meta.dill`, `Explainer.save`) beside it, or `initParameters` to build one (`method`, `n_steps`,
`internal_batch_size`, `layer` as alibi takes them). Without a `target` in `config`, each instance is
explained for the class the model predicts for it, as Seldon's explainer does. Needs the explainer's
tensorflow environment (`env.TENSORFLOW_REQUIREMENTS`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from explainer_server.errors import ConfigError

KERAS_FILES = ("model.keras", "model.h5")


def _tensorflow() -> Any:
    try:
        import tensorflow
    except ImportError as error:
        raise ConfigError(
            "IntegratedGradients needs tensorflow: run the explainer in the tensorflow environment "
            "(python explainer_server/env.py launch picks it for this type)"
        ) from error
    return tensorflow


def keras_file(folder: Path) -> Path | None:
    """The Keras model in `folder`: a .keras or .h5 file, or the folder itself as a SavedModel."""
    for name in KERAS_FILES:
        if (folder / name).is_file():
            return folder / name
    if (folder / "saved_model.pb").is_file():
        return folder
    return None


def load_keras(folder: Path) -> Any:
    found = keras_file(folder)
    if found is None:
        raise ConfigError(
            f"IntegratedGradients: no Keras model (model.keras, model.h5, SavedModel) in {folder}"
        )
    return _tensorflow().keras.models.load_model(found, compile=False)


def build(folder: Path, init_parameters: dict[str, Any]) -> Any:
    """The explainer: alibi's saved one beside the model, or one made from `init_parameters`."""
    model = load_keras(folder)
    if (folder / "meta.dill").exists():
        from alibi.saving import load_explainer

        return load_explainer(folder, model)
    from alibi.explainers import IntegratedGradients

    return IntegratedGradients(model, **init_parameters)


def explain(explainer: Any, instances: np.ndarray, arguments: dict[str, Any]) -> Any:
    batch = np.asarray(instances, dtype=np.float32)
    if "target" not in arguments:
        predictions = np.asarray(explainer.model(batch))
        if predictions.ndim == 2 and predictions.shape[1] > 1:
            arguments = {**arguments, "target": predictions.argmax(axis=1)}
    return explainer.explain(batch, **arguments)
