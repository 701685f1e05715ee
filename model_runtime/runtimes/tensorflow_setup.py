"""`python -m model_runtime.runtimes.tensorflow_setup`: build TensorFlow's environment now and print its
interpreter, say before `seldon-mesh up`, whose runtimes must load within its ready timeout (the first
TENSORFLOW_SERVER load otherwise builds it, about a minute). Not imported by the runtime."""

from __future__ import annotations

import logging

from model_runtime.runtimes.tensorflow_env import tensorflow_python


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(tensorflow_python())


if __name__ == "__main__":
    main()
