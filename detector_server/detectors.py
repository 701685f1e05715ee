"""The three detector kinds of Seldon's alibi-detect server around one loaded alibi-detect detector.

`OutlierDetector` and `AdversarialDetector` score each event's instances; `DriftDetector` gathers events
until `drift_batch_size` instances wait, then tests the whole batch at once and starts a new one. Each
`process` returns an `Outcome` whose `commit` applies what the event changed (the drift batch): the server
commits only once the reply event was delivered, so an event refused for a retry (reply URL down) leaves
no trace and its redelivery is counted once. Called from one thread at a time (the server holds a lock).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detector_server.protocols import PayloadError

Array = npt.NDArray[Any]

HEADER_RETURN_INSTANCE_SCORE = "Alibi-Detect-Return-Instance-Score"
HEADER_RETURN_FEATURE_SCORE = "Alibi-Detect-Return-Feature-Score"
HEADER_OUTLIER_TYPE = "Alibi-Detect-Outlier-Type"


class Kind(StrEnum):
    OUTLIER = "OutlierDetector"
    ADVERSARIAL = "AdversarialDetector"
    DRIFT = "DriftDetector"


DEFAULT_EVENT_TYPES = {
    Kind.OUTLIER: "io.seldon.serving.inference.outlier",
    Kind.ADVERSARIAL: "io.seldon.serving.inference.adversarial",
    Kind.DRIFT: "io.seldon.serving.inference.drift",
}


@dataclass(frozen=True)
class Options:
    """What a caller asks of one event: Seldon's `Alibi-Detect-*` headers, defaulted by the server's
    `RETURN_INSTANCE_SCORE` / `RETURN_FEATURE_SCORE` environment (the payload logger sends no headers)."""

    instance_score: bool = False
    feature_score: bool = False
    outlier_type: str = "instance"

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], defaults: Options) -> Options:
        lowered = {k.lower(): v for k, v in headers.items()}

        def flag(name: str, default: bool) -> bool:
            value = lowered.get(name.lower())
            return default if value is None else value.strip().lower() == "true"

        return cls(
            instance_score=flag(HEADER_RETURN_INSTANCE_SCORE, defaults.instance_score),
            feature_score=flag(HEADER_RETURN_FEATURE_SCORE, defaults.feature_score),
            outlier_type=lowered.get(HEADER_OUTLIER_TYPE.lower()) or defaults.outlier_type,
        )


@dataclass
class Outcome:
    """`answer` is None while a drift batch fills (nothing to report: no reply event, an empty answer)."""

    answer: dict[str, Any] | None
    instances: int
    scores: dict[str, Any] = field(default_factory=dict)  # the detector's `data`, for the metrics
    commit: Callable[[], None] = field(default=lambda: None)


def jsonable(value: Any) -> Any:
    """numpy arrays and scalars as JSON lists and numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return json.loads(json.dumps(value, default=str))


def _call(predict: Callable[..., Any], batch: Array, wanted: Mapping[str, Any]) -> dict[str, Any]:
    """`predict(batch, **wanted)` passing only the keywords this detector's predict accepts (IForest and
    Mahalanobis take no `outlier_type` or `return_feature_score`, the auto-encoders do)."""
    accepted = inspect.signature(predict).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    kwargs = {k: v for k, v in wanted.items() if takes_any or k in accepted}
    try:
        result = predict(batch, **kwargs)
    except (ValueError, TypeError, IndexError) as error:
        raise PayloadError(f"the detector cannot score this input {batch.shape}: {error}") from error
    if not isinstance(result, dict):
        raise TypeError(f"the detector's predict returned {type(result).__name__}, not a dict")
    return result


class OutlierDetector:
    """Scores every event's instances; the answer is alibi-detect's own `{"data": ..., "meta": ...}`."""

    kind = Kind.OUTLIER

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    def process(self, batch: Array, options: Options) -> Outcome:
        wanted = {
            "outlier_type": options.outlier_type,
            "return_feature_score": options.feature_score,
            "return_instance_score": True,  # always computed: the metrics show it
        }
        result = jsonable(_call(self.detector.predict, batch, wanted))
        data = result.get("data")
        scores = dict(data) if isinstance(data, dict) else {}  # before the answer drops what was not asked
        if isinstance(data, dict):
            if not options.instance_score:
                data.pop("instance_score", None)
            for key in ("instance_score", "feature_score"):
                if key in data and data[key] is None:
                    del data[key]
        return Outcome(answer=result, instances=int(batch.shape[0]), scores=scores)


class AdversarialDetector(OutlierDetector):
    kind = Kind.ADVERSARIAL


class DriftDetector:
    """Tests a batch once `batch_size` instances have come in, over every instance gathered (as Seldon's
    server does: the batch may overshoot by the last event's size), then starts the next batch."""

    kind = Kind.DRIFT

    def __init__(self, detector: Any, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError("drift_batch_size must be at least 1")
        self.detector = detector
        self.batch_size = batch_size
        self._rows: list[Array] = []
        self._count = 0

    @property
    def waiting(self) -> int:
        return self._count

    def process(self, batch: Array, options: Options) -> Outcome:
        if self._rows and batch.shape[1:] != self._rows[0].shape[1:]:
            raise PayloadError(
                f"instances of shape {batch.shape[1:]} cannot join a batch of {self._rows[0].shape[1:]}"
            )
        rows, count = [*self._rows, batch], self._count + int(batch.shape[0])

        def keep() -> None:
            self._rows, self._count = rows, count

        if count < self.batch_size:
            return Outcome(answer=None, instances=int(batch.shape[0]), commit=keep)
        result = jsonable(_call(self.detector.predict, np.concatenate(rows), {}))

        def reset() -> None:
            self._rows, self._count = [], 0

        data = result.get("data")
        scores = dict(data) if isinstance(data, dict) else {}
        return Outcome(answer=result, instances=int(batch.shape[0]), scores=scores, commit=reset)


Detector = OutlierDetector | DriftDetector


def load(kind: Kind, path: Path, drift_batch_size: int) -> Detector:
    """The detector saved (alibi-detect's `save_detector`) at the local folder `path`."""
    from alibi_detect.saving import load_detector  # the environment's, imported only here

    detector = load_detector(str(path))
    if kind is Kind.DRIFT:
        return DriftDetector(detector, drift_batch_size)
    if kind is Kind.ADVERSARIAL:
        return AdversarialDetector(detector)
    return OutlierDetector(detector)
