"""A logged request's payload as the detector's batch, for each of Seldon's detector protocols."""

from __future__ import annotations

import json

import pytest

from detector_server.protocols import PayloadError, Protocol, choose, decode


def _body(message: object) -> bytes:
    return json.dumps(message).encode()


def test_a_seldon_message_gives_its_ndarray_or_tensor() -> None:
    ndarray = {"data": {"ndarray": [[1, 2], [3, 4]]}}
    assert decode(_body(ndarray), Protocol.SELDON).tolist() == [[1, 2], [3, 4]]
    tensor = {"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]}}}
    assert decode(_body(tensor), Protocol.SELDON).tolist() == [[1, 2], [3, 4]]


def test_tensorflow_instances_and_v2_inputs_reshaped_to_their_shape() -> None:
    assert decode(_body({"instances": [[1.0, 2.0]]}), Protocol.TENSORFLOW).shape == (1, 2)
    v2 = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}
    assert decode(_body(v2), Protocol.V2).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_the_events_ce_protocol_chooses_unless_the_server_was_told() -> None:
    assert choose(None, "seldon") is Protocol.SELDON
    assert choose(None, "v2") is Protocol.V2
    assert choose(None, None) is Protocol.TENSORFLOW  # Seldon's server's default
    assert choose(Protocol.V2, "seldon") is Protocol.V2


@pytest.mark.parametrize(
    ("body", "protocol"),
    [
        (b"not json", Protocol.SELDON),
        (b"[1, 2]", Protocol.SELDON),
        (_body({"data": {"strData": "hello"}}), Protocol.SELDON),
        (_body({"data": {"ndarray": [[1, 2], [3]]}}), Protocol.SELDON),
        (_body({"data": {"ndarray": 7}}), Protocol.SELDON),
        (_body({"data": {"tensor": {"shape": [3], "values": [1, 2]}}}), Protocol.SELDON),
        (_body({"predictions": [1]}), Protocol.TENSORFLOW),
        (_body({"inputs": []}), Protocol.V2),
        (_body({"inputs": [{"name": "x", "data": ["a", {"b": 1}]}]}), Protocol.V2),
    ],
)
def test_what_is_no_request_of_the_protocol_is_a_payload_error(body: bytes, protocol: Protocol) -> None:
    with pytest.raises(PayloadError):
        decode(body, protocol)
