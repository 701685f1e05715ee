"""Run by the detector environment's python (alibi-detect, numpy<2): fit and save the test's detectors.

`python fit_detectors.py FOLDER` writes FOLDER/outlier (an IForest, alibi-detect's legacy `meta.dill`
format), FOLDER/adversarial (an AdversarialAE guarding a small Keras classifier, the same format),
FOLDER/drift (a KSDrift, `config.toml`) and FOLDER/data.json: the rows the test sends, drawn
here from seeded generators so they do not depend on the numpy of the test's own venv.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # alibi-detect's models are tf.keras (Keras 2) ones

import numpy as np
import tensorflow as tf
from alibi_detect.ad import AdversarialAE
from alibi_detect.cd import KSDrift
from alibi_detect.od import IForest
from alibi_detect.saving import save_detector

FEATURES = 4


def main(folder: Path) -> None:
    rng = np.random.default_rng(20261203)
    train = rng.normal(size=(1000, FEATURES))
    outlier = IForest(threshold=None, n_estimators=100)
    outlier.fit(train)
    outlier.infer_threshold(train, threshold_perc=99)
    save_detector(outlier, str(folder / "outlier"))
    drift = KSDrift(train, p_val=0.05)
    save_detector(drift, str(folder / "drift"))
    save_detector(_adversarial(train), str(folder / "adversarial"))
    ordinary = rng.normal(scale=0.3, size=(5, FEATURES))  # well inside the training distribution
    same = train[rng.choice(len(train), size=20, replace=False)]  # a batch of the training data itself
    shifted = rng.normal(loc=2.0, size=(20, FEATURES))
    data = {
        "ordinary": ordinary.tolist(),
        "outlier": [[8.0, -8.0, 8.0, -8.0]],
        "same": same.tolist(),
        "shifted": shifted.tolist(),
    }
    (folder / "data.json").write_text(json.dumps(data))


def _adversarial(train: np.ndarray) -> AdversarialAE:
    """A small classifier (the sign of the rows' sum) and the auto-encoder that guards it."""
    tf.keras.utils.set_random_seed(7)
    x = train.astype("float32")
    y = (x.sum(axis=1) > 0).astype("int64")
    layers = tf.keras.layers
    classifier = tf.keras.Sequential(
        [layers.InputLayer(input_shape=(FEATURES,)), layers.Dense(16, activation="relu"), layers.Dense(2)]
    )
    classifier.add(layers.Softmax())
    classifier.compile("adam", "sparse_categorical_crossentropy")
    classifier.fit(x, y, epochs=5, verbose=0)
    encoder = tf.keras.Sequential([layers.InputLayer(input_shape=(FEATURES,)), layers.Dense(3)])
    decoder = tf.keras.Sequential([layers.InputLayer(input_shape=(3,)), layers.Dense(FEATURES)])
    detector = AdversarialAE(encoder_net=encoder, decoder_net=decoder, model=classifier)
    detector.fit(x, epochs=5, verbose=False)
    detector.infer_threshold(x, threshold_perc=95)
    return detector


if __name__ == "__main__":
    main(Path(sys.argv[1]))
