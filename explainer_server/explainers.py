"""alibi explainers as a predictor's `explainer:` describes them: loaded from `modelUri` or fitted.

- `modelUri` names a saved explainer: a folder in alibi's save format (`meta.dill` + `explainer.dill`,
  `Explainer.save`), or Seldon's older single `explainer.dill` (a file, or a folder holding it).
- Without one, `initParameters` (a JSON object, or a string holding one) builds it: the constructor's
  arguments (`feature_names`, `categorical_names`, `seed`, ...), plus what fitting needs: `training_data`
  (rows inline, or a `.npy`/`.csv`/`.json` file: AnchorTabular's training set, the SHAP background),
  `disc_perc` (AnchorTabular), `spacy_model` (AnchorText: a spacy pipeline name; by default a blank
  English tokenizer, which needs no download).
- `config` holds the `explain()` arguments (Seldon passes them as strings: `threshold: "0.95"`,
  `nsamples: "100"`); each is read as JSON when it parses and kept a string otherwise.
- TreeShap is white-box: it needs the model itself, `--tree-model` (the predictor's scikit-learn model
  file), and calls nothing through the mesh.
Black-box explainers call the model while they are built (alibi checks the predictor's output shape), so
they are built on the first request, and again after a failed build (the model was down).
Anchor explainers explain the request's first instance, as Seldon's server does; SHAP ones all of them.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from explainer_server import gradients
from explainer_server.errors import BadRequest, ConfigError

Predictor = Callable[[np.ndarray], np.ndarray]

BLACK_BOX = ("AnchorTabular", "AnchorText", "KernelShap")
SUPPORTED = (*BLACK_BOX, "TreeShap", "IntegratedGradients")
FIRST_INSTANCE = ("AnchorTabular", "AnchorText")
# what `initParameters` may hold besides the constructor's arguments
FIT_KEYS = ("training_data", "disc_perc", "spacy_model", "summarise_background", "n_background_samples")


@dataclass(frozen=True)
class ExplainerSpec:
    type: str
    model_uri: str | None = None
    init_parameters: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    tree_model: str | None = None


def parse_init_parameters(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise ConfigError(f"initParameters is not JSON: {error}") from error
    if isinstance(value, str):  # a manifest's string holding JSON, passed on as JSON
        return parse_init_parameters(value)
    if not isinstance(value, dict):
        raise ConfigError("initParameters is a JSON object of the explainer's arguments")
    return value


def explain_arguments(config: Mapping[str, Any]) -> dict[str, Any]:
    """Seldon's `config` strings as Python values: numbers, booleans and lists parse as JSON."""
    parsed: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, str):
            try:
                parsed[key] = json.loads(value)
            except ValueError:
                parsed[key] = value
        else:
            parsed[key] = value
    return parsed


def _alibi_class(kind: str) -> Any:
    if kind not in SUPPORTED:
        raise ConfigError(f"explainer type {kind!r} is not served here; served: {', '.join(SUPPORTED)}")
    import alibi.explainers

    return getattr(alibi.explainers, kind)


def _check_arguments(function: Callable[..., Any], arguments: Mapping[str, Any], what: str) -> None:
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(arguments) - set(parameters))
    if unknown:
        raise ConfigError(f"{what} takes no {', '.join(unknown)} (it takes {', '.join(parameters)})")


def load_rows(value: Any, base: Path | None = None) -> np.ndarray:
    """Training or background rows: inline, or a .npy, .csv (numbers, no header) or .json file."""
    if isinstance(value, list):
        return np.array(value)
    if not isinstance(value, str):
        raise ConfigError("training_data is a list of rows or the path of a .npy, .csv or .json file")
    path = Path(value).expanduser()
    path = path if path.is_absolute() or base is None else base / path
    if not path.is_file():
        raise ConfigError(f"training_data {value!r}: no such file ({path})")
    if path.suffix == ".npy":
        return np.asarray(np.load(path, allow_pickle=False))
    if path.suffix == ".json":
        return np.array(json.loads(path.read_text()))
    return np.loadtxt(path, delimiter=",", ndmin=2)


def _saved_folder(uri: str) -> Path:
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()
    if not path.exists():
        raise ConfigError(f"modelUri {uri!r}: no saved explainer there ({path})")
    return path


class Explanations:
    """One explainer: checked at start, built on first use, then asked for explanations (one at a time:
    alibi explainers keep state while they explain)."""

    def __init__(self, spec: ExplainerSpec, predictor: Predictor, base_dir: Path | None = None) -> None:
        self.spec = spec
        self._predictor = predictor
        self._base_dir = base_dir
        self._explainer: Any = None
        self._lock = threading.Lock()
        self._explain_args = explain_arguments(spec.config)

    def check(self) -> None:
        """What can be known without the model: the type, the files, the arguments. Raises ConfigError."""
        if self.spec.type == "IntegratedGradients":
            self._check_gradients()
            return
        cls = _alibi_class(self.spec.type)
        _check_arguments(cls.explain, self._explain_args, f"{self.spec.type}.explain (config)")
        if self.spec.model_uri:
            _saved_folder(self.spec.model_uri)
        else:
            constructor = {k: v for k, v in self.spec.init_parameters.items() if k not in FIT_KEYS}
            _check_arguments(
                cls.__init__, {"predictor": None, **constructor}, f"{self.spec.type} (initParameters)"
            )
            if (
                self.spec.type in ("AnchorTabular", "KernelShap")
                and "training_data" not in self.spec.init_parameters
            ):
                raise ConfigError(
                    f"{self.spec.type} needs a saved explainer (modelUri) or initParameters.training_data"
                )
            if "training_data" in self.spec.init_parameters:
                load_rows(self.spec.init_parameters["training_data"], self._base_dir)
        if self.spec.type == "TreeShap":
            self._tree_model()

    def explain(self, instances: np.ndarray) -> str:
        """The explanation's JSON (alibi's `Explanation.to_json`)."""
        with self._lock:
            if self._explainer is None:
                self._explainer = self._build()
            if instances.size == 0:
                raise BadRequest("nothing to explain: the request holds no instance")
            target: Any = instances[0] if self.spec.type in FIRST_INSTANCE else instances
            if self.spec.type == "AnchorText":
                target = str(target)
            try:
                if self.spec.type == "IntegratedGradients":
                    explanation = gradients.explain(self._explainer, instances, self._explain_args)
                else:
                    explanation = self._explainer.explain(target, **self._explain_args)
            except (ValueError, TypeError, IndexError) as error:
                raise BadRequest(f"{self.spec.type} cannot explain this input: {error}") from error
            return str(explanation.to_json())

    def _check_gradients(self) -> None:
        gradients._tensorflow()
        if not self.spec.model_uri:
            raise ConfigError("IntegratedGradients needs modelUri: the folder of the Keras model it explains")
        folder = _saved_folder(self.spec.model_uri)
        if gradients.keras_file(folder) is None:
            raise ConfigError(
                f"IntegratedGradients: no Keras model (model.keras, model.h5, SavedModel) in {folder}"
            )

    def _build(self) -> Any:
        if self.spec.type == "IntegratedGradients":
            assert self.spec.model_uri is not None  # check() made sure
            return gradients.build(_saved_folder(self.spec.model_uri), dict(self.spec.init_parameters))
        predictor = self._tree_model() if self.spec.type == "TreeShap" else self._predictor
        if self.spec.model_uri:
            return self._load(_saved_folder(self.spec.model_uri), predictor)
        return self._fit(predictor)

    def _load(self, path: Path, predictor: Any) -> Any:
        import dill
        from alibi.saving import load_explainer

        if path.is_dir() and (path / "meta.dill").exists():
            return load_explainer(path, predictor)
        single = path / "explainer.dill" if path.is_dir() else path
        with single.open("rb") as file:
            explainer = dill.load(file)
        explainer.reset_predictor(predictor)
        return explainer

    def _fit(self, predictor: Any) -> Any:
        params = dict(self.spec.init_parameters)
        fit = {k: params.pop(k) for k in FIT_KEYS if k in params}
        cls = _alibi_class(self.spec.type)
        if self.spec.type == "AnchorText":
            import spacy

            model = fit.get("spacy_model")
            nlp = spacy.load(model) if model else spacy.blank("en")
            params.setdefault("sampling_strategy", "unknown")
            return cls(predictor, nlp=nlp, **params)
        explainer = cls(predictor, **params)
        rows = load_rows(fit["training_data"], self._base_dir) if "training_data" in fit else None
        if self.spec.type == "AnchorTabular":
            assert rows is not None
            explainer.fit(rows, disc_perc=tuple(fit.get("disc_perc", (25, 50, 75))))
        else:
            extra = {k: fit[k] for k in ("summarise_background", "n_background_samples") if k in fit}
            if rows is not None:
                explainer.fit(rows, **extra)
            else:
                explainer.fit()
        return explainer

    def _tree_model(self) -> Any:
        if not self.spec.tree_model:
            raise ConfigError(
                "TreeShap needs the model itself: the predictor's modelUri (a scikit-learn model)"
            )
        path = Path(self.spec.tree_model)
        candidates = [path] if path.is_file() else sorted(path.glob("*.joblib")) + sorted(path.glob("*.pkl"))
        if not candidates:
            raise ConfigError(f"TreeShap: no model.joblib or .pkl model in {path}")
        import joblib

        return joblib.load(candidates[0])
