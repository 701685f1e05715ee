"""Run by the detector environment's python (alibi-detect, numpy<2): fit and save the test's detectors.

`python fit_detectors.py FOLDER` writes FOLDER/outlier (an IForest, alibi-detect's legacy `meta.dill`
format), FOLDER/drift (a KSDrift, `config.toml`) and FOLDER/data.json: the rows the test sends, drawn
here from seeded generators so they do not depend on the numpy of the test's own venv.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
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


if __name__ == "__main__":
    main(Path(sys.argv[1]))
