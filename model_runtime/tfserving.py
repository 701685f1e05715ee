"""The TensorFlow Serving API core (`protocol: tensorflow`): model status, metadata, predict, classify and
regress, the way TF Serving answers them, over whatever component offers `TFServingModel`
(`runtimes.tensorflow.TensorFlowServer`).

Transport-neutral like `inference.InferenceCore`: `rest.tfserving` and `rpc.tfserving` decode the wire
into arrays and a `Target` (model name, version or label, signature), call here, and encode the answer.
The model answers under its `model_name` parameter, else the graph node's name; one version is served
(the latest in the model folder), a request naming another gets TF Serving's "Servable not found" (404).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from generated.tensorflow import signature_pb2, tensor_pb2
from model_runtime.codecs.tf_json import numpy_dtype
from model_runtime.dataplane import DataPlane
from model_runtime.errors import BadRequest, NotFound

Array = np.ndarray[Any, Any]

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


@runtime_checkable
class TFServingModel(Protocol):
    """What a component offers to answer TF Serving's API."""

    tf_model_name: str  # "" answers under the node's name

    def tf_version(self) -> int: ...

    def tf_signatures(self) -> Mapping[str, signature_pb2.SignatureDef]: ...

    def tf_run(self, signature: str, inputs: dict[str, Array]) -> dict[str, Array]: ...


@dataclass(frozen=True)
class Target:
    """What a request names: the model, a version (or a label) and a signature ("" for the default)."""

    model: str
    version: int | None = None
    label: str = ""
    signature: str = ""


@dataclass(frozen=True)
class Resolved:
    """The model a request reached: its name, version, signature name and SignatureDef."""

    name: str
    version: int
    signature: str
    definition: signature_pb2.SignatureDef


@dataclass(frozen=True)
class Classified:
    resolved: Resolved
    classes: list[list[tuple[str, float]]]


@dataclass(frozen=True)
class Regressed:
    resolved: Resolved
    values: list[float]


class TFServingCore:
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    def model(self, target: Target) -> tuple[TFServingModel, str, int]:
        """The served model, its name and version, if `target` names them (404 otherwise)."""
        user = self.plane.check_ready().user
        if not isinstance(user, TFServingModel):
            raise NotFound(
                f"{self.plane.settings.name!r} is not a TensorFlow model: it has no TF Serving API"
            )
        name = user.tf_model_name or self.plane.settings.name
        version = user.tf_version()
        if target.model and target.model != name:
            raise NotFound(f"Servable not found for request: {_wanted(target)}")
        if target.label or (target.version is not None and target.version != version):
            raise NotFound(f"Servable not found for request: {_wanted(target, name)}")
        return user, name, version

    def status(self, target: Target) -> tuple[str, int]:
        """(name, version) of the model version that is AVAILABLE."""
        _, name, version = self.model(target)
        return name, version

    def metadata(self, target: Target) -> tuple[str, int, Mapping[str, signature_pb2.SignatureDef]]:
        user, name, version = self.model(target)
        return name, version, user.tf_signatures()

    def resolve(self, target: Target) -> tuple[TFServingModel, Resolved]:
        user, name, version = self.model(target)
        signature = target.signature or DEFAULT_SIGNATURE
        definition = user.tf_signatures().get(signature)
        if definition is None:
            raise BadRequest(f'Serving signature name: "{signature}" not found in signature def')
        return user, Resolved(name, version, signature, definition)

    def predict(
        self, target: Target, inputs: dict[str, Array], output_filter: list[str] | None = None
    ) -> tuple[Resolved, dict[str, Array]]:
        user, resolved = self.resolve(target)
        definition = resolved.definition
        unknown = [f for f in output_filter or [] if f not in definition.outputs]
        if unknown:
            raise BadRequest(
                f"output tensor alias not found in signature: {unknown[0]} Outputs expected to be in "
                f"the set {{{','.join(sorted(definition.outputs))}}}."
            )
        outputs = user.tf_run(resolved.signature, check_inputs(definition, inputs))
        if output_filter:
            outputs = {name: outputs[name] for name in output_filter if name in outputs}
        return resolved, outputs

    def classify(self, target: Target, examples: list[bytes]) -> Classified:
        user, resolved = self.resolve(target)
        alias = _examples_input(resolved, ("classes", "scores"), CLASSIFY_METHOD)
        outputs = user.tf_run(resolved.signature, {alias: _strings(examples)})
        classes, scores = outputs.get("classes"), outputs.get("scores")
        if classes is None and scores is None:
            raise BadRequest("the classify signature gave neither classes nor scores")
        rows = len(examples)
        first = classes if classes is not None else scores
        assert first is not None
        shape = np.asarray(first).reshape(rows, -1).shape
        labels = classes.reshape(shape) if classes is not None else np.full(shape, b"", dtype=object)
        values = scores.reshape(shape) if scores is not None else np.zeros(shape)
        return Classified(
            resolved,
            [[(_text(labels[r, c]), float(values[r, c])) for c in range(shape[1])] for r in range(rows)],
        )

    def regress(self, target: Target, examples: list[bytes]) -> Regressed:
        user, resolved = self.resolve(target)
        alias = _examples_input(resolved, ("outputs",), REGRESS_METHOD)
        outputs = user.tf_run(resolved.signature, {alias: _strings(examples)})
        values = outputs.get("outputs")
        if values is None or values.size != len(examples):
            raise BadRequest("the regress signature must give one `outputs` value per example")
        return Regressed(resolved, [float(v) for v in np.asarray(values).reshape(-1)])


def check_inputs(definition: signature_pb2.SignatureDef, inputs: dict[str, Array]) -> dict[str, Array]:
    """The inputs cast to the signature's dtypes, with its aliases and fixed dimensions (400 if not)."""
    missing = sorted(set(definition.inputs) - set(inputs))
    extra = sorted(set(inputs) - set(definition.inputs))
    if missing or extra:
        raise BadRequest(
            f"input size does not match signature: {len(inputs)}!={len(definition.inputs)} "
            f"len({{{','.join(sorted(inputs))}}}) != len({{{','.join(sorted(definition.inputs))}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
        )
    return {alias: _cast(alias, definition.inputs[alias], value) for alias, value in inputs.items()}


def _cast(alias: str, info: signature_pb2.TensorInfo, value: Array) -> Array:
    dtype = numpy_dtype(info.dtype)
    array = np.asarray(value)
    if dtype == np.dtype(object):
        if array.dtype.kind not in "OSU" and array.size:
            raise BadRequest(f"input {alias!r} must be strings (DT_STRING), got {array.dtype}")
        array = array.astype(object)
    elif array.dtype != dtype:
        if array.dtype.kind in "OSU":
            raise BadRequest(f"input {alias!r} must be {tensor_pb2.DataType.Name(info.dtype)}, got strings")
        try:
            array = array.astype(dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadRequest(
                f"input {alias!r} cannot be {tensor_pb2.DataType.Name(info.dtype)}: {exc}"
            ) from exc
    shape = info.tensor_shape
    if not shape.unknown_rank and shape.dim:
        wanted = [int(d.size) for d in shape.dim]
        if len(wanted) != array.ndim or any(
            w >= 0 and w != got for w, got in zip(wanted, array.shape, strict=True)
        ):
            shown = [w if w >= 0 else -1 for w in wanted]
            raise BadRequest(f"input {alias!r} has shape {list(array.shape)}; the signature wants {shown}")
    return array


def _examples_input(resolved: Resolved, outputs: tuple[str, ...], method: str) -> str:
    """The alias of the serialized-Examples input of a classify or regress signature (400 if it has none).

    A signature whose `method_name` says so qualifies, and so does one shaped like it (one DT_STRING input
    and outputs among `outputs`), since TF2's `tf.saved_model.save` writes every method name as predict.
    """
    definition = resolved.definition
    strings = [a for a, i in definition.inputs.items() if i.dtype == tensor_pb2.DT_STRING]
    shaped = len(definition.inputs) == 1 and len(strings) == 1 and set(definition.outputs) & set(outputs)
    if (definition.method_name == method and len(strings) == 1) or shaped:
        return strings[0]
    raise BadRequest(
        f"Expected {method.rsplit('/', 1)[-1]} signature method_name to be {method}. Was: "
        f"{definition.method_name} (signature {resolved.signature!r}: inputs {sorted(definition.inputs)}, "
        f"outputs {sorted(definition.outputs)})"
    )


def _strings(items: list[bytes]) -> Array:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _wanted(target: Target, name: str | None = None) -> str:
    model = name or target.model
    if target.label:
        return f"Specific({model}, {target.label})"
    if target.version is not None:
        return f"Specific({model}, {target.version})"
    return f"Latest({model})"
