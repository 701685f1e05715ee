"""Train the small Keras iris classifier an IntegratedGradients explainer explains, and save it.

Run with the explainer's tensorflow environment's python: `python fit_keras.py OUT_DIR` writes
OUT_DIR/model.h5 (a 4-16-3 softmax network, a few seconds of CPU).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_iris


def main(out_dir: Path) -> None:
    features, target = load_iris(return_X_y=True)
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Input(shape=(4,)),
            tf.keras.layers.Dense(16, activation="relu"),
            tf.keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(features.astype(np.float32), target, epochs=60, batch_size=32, verbose=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "model.h5")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
