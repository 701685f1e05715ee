"""Graph `parameters` (Seldon's `[{"name", "value", "type"}]` list) → typed `__init__` keyword arguments."""

from __future__ import annotations

from typing import Any

import orjson

from model_runtime.errors import BadParameter

ParamValue = str | int | float | bool

_TRUE = {"y", "yes", "t", "true", "on", "1"}
_FALSE = {"n", "no", "f", "false", "off", "0"}


def parse_parameters(text: str | None) -> dict[str, ParamValue]:
    """Parse the JSON list from `--parameters` or `PREDICTIVE_UNIT_PARAMETERS`; raise `BadParameter`."""
    if text is None or not text.strip():
        return {}
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadParameter(f"parameters are not valid JSON: {exc}") from exc
    return convert_parameters(items)


def convert_parameters(items: Any) -> dict[str, ParamValue]:
    if not isinstance(items, list):
        raise BadParameter('parameters must be a JSON list of {"name", "value", "type"} objects')
    out: dict[str, ParamValue] = {}
    for item in items:
        if not isinstance(item, dict) or "name" not in item or "value" not in item:
            raise BadParameter(f'parameter {item!r} needs "name", "value" and "type"')
        name = str(item["name"])
        out[name] = convert_value(name, item["value"], str(item.get("type", "STRING")).upper())
    return out


def convert_value(name: str, value: Any, type_name: str) -> ParamValue:
    try:
        if type_name == "INT":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if type_name in ("FLOAT", "DOUBLE"):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if type_name == "STRING":
            return value if isinstance(value, str) else str(value)
        if type_name == "BOOL":
            return _to_bool(value)
    except (TypeError, ValueError):
        raise BadParameter(f"parameter {name!r}: {value!r} is not a valid {type_name}") from None
    known = "INT, FLOAT, DOUBLE, STRING, BOOL"
    raise BadParameter(f"parameter {name!r} has unknown type {type_name!r} ({known})")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(value)
