"""A tiny TensorFlow SavedModel, built by the test itself with TensorFlow's own environment.

`build_saved_model(base)` writes `base/1/` (TF Serving's version folder layout) with these signatures,
each simple enough to check by hand:
- `serving_default`: `x` float32 [n, 2] -> `y` = 2x + 1 (float32 [n, 2])
- `two`: `a`, `b` float32 [n] -> `sum` = a + b, `product` = a * b
- `text`: `text` string [n] -> `length` int32 (bytes per item), `upper_bytes` string (upper-cased)
- `classify`: `inputs` serialized tf.Examples (feature `x`: 2 floats) -> `classes` [n, 2] ("neg", "pos")
  and `scores` [n, 2] = x
- `regress`: `inputs` serialized tf.Examples -> `outputs` [n] = x[0] + x[1]
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from model_runtime.runtimes.tensorflow_env import tensorflow_python

_SCRIPT = r"""
import sys
import tensorflow as tf

FEATURES = {"x": tf.io.FixedLenFeature([2], tf.float32)}


class Toy(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def affine(self, x):
        return {"y": 2.0 * x + 1.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.float32)])
    def two(self, a, b):
        return {"sum": a + b, "product": a * b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def text(self, text):
        return {"length": tf.strings.length(text), "upper_bytes": tf.strings.upper(text)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def classify(self, inputs):
        x = tf.io.parse_example(inputs, FEATURES)["x"]
        classes = tf.tile(tf.constant([["neg", "pos"]]), [tf.shape(x)[0], 1])
        return {"classes": classes, "scores": x}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def regress(self, inputs):
        x = tf.io.parse_example(inputs, FEATURES)["x"]
        return {"outputs": x[:, 0] + x[:, 1]}


toy = Toy()
tf.saved_model.save(
    toy,
    sys.argv[1],
    signatures={
        "serving_default": toy.affine,
        "two": toy.two,
        "text": toy.text,
        "classify": toy.classify,
        "regress": toy.regress,
    },
)
"""


def build_saved_model(base: Path) -> Path:
    """The model base folder `base` (holding version `1`)."""
    subprocess.run([str(tensorflow_python()), "-c", _SCRIPT, str(base / "1")], check=True, timeout=600)
    return base
