"""Graph parameters → typed keyword arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest

from model_runtime.errors import BadParameter
from model_runtime.parameters import parse_parameters


@pytest.mark.parametrize(
    ("value", "type_name", "expected"),
    [
        ("3", "INT", 3),
        (3, "INT", 3),
        ("-7", "INT", -7),
        ("2.5", "FLOAT", 2.5),
        ("1e-3", "DOUBLE", 0.001),
        (4, "DOUBLE", 4.0),
        ("text", "STRING", "text"),
        (12, "STRING", "12"),
        ("true", "BOOL", True),
        ("Yes", "BOOL", True),
        ("on", "BOOL", True),
        ("1", "BOOL", True),
        ("false", "BOOL", False),
        ("n", "BOOL", False),
        ("0", "BOOL", False),
        (False, "BOOL", False),
        ("x", "string", "x"),
    ],
)
def test_conversion(value: Any, type_name: str, expected: Any) -> None:
    converted = parse_parameters(json.dumps([{"name": "p", "value": value, "type": type_name}]))["p"]
    assert converted == expected
    assert type(converted) is type(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"name": "n", "value": "ten", "type": "INT"}]', "parameter 'n': 'ten' is not a valid INT"),
        ('[{"name": "n", "value": "1.5", "type": "INT"}]', "is not a valid INT"),
        ('[{"name": "f", "value": "fast", "type": "FLOAT"}]', "is not a valid FLOAT"),
        ('[{"name": "b", "value": "maybe", "type": "BOOL"}]', "is not a valid BOOL"),
        ('[{"name": "x", "value": "1", "type": "COMPLEX"}]', "unknown type 'COMPLEX'"),
        ('[{"value": "1", "type": "INT"}]', 'needs "name", "value" and "type"'),
        ('{"name": "x"}', "must be a JSON list"),
        ("[{", "not valid JSON"),
    ],
)
def test_bad_parameters(text: str, message: str) -> None:
    with pytest.raises(BadParameter) as error:
        parse_parameters(text)
    assert message in error.value.info


def test_absent_parameters() -> None:
    assert parse_parameters(None) == {}
    assert parse_parameters("  ") == {}
    assert parse_parameters("[]") == {}
