"""Run tritonclient in its own process (its generated protos and ours both define `inference.*` in
protobuf's default pool, so they cannot share one): `python triton_client.py '<json spec>'`.

The spec names the transport (http or grpc), the url, the model, gRPC headers, the rows and the output
wanted; the script prints readiness, metadata and the output array as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np


def main(spec: dict[str, Any]) -> dict[str, Any]:
    rows = np.asarray(spec["rows"], dtype=np.float32)
    model, output = spec["model"], spec["output"]
    if spec["transport"] == "http":
        import tritonclient.http as triton

        client = triton.InferenceServerClient(url=spec["url"])
        ready = client.is_server_ready() and client.is_model_ready(model)
        meta = client.get_model_metadata(model)
        tensor = triton.InferInput("input-0", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=True)
        wanted = triton.InferRequestedOutput(output, binary_data=True)
        result = client.infer(model, [tensor], outputs=[wanted], request_id="triton-http")
        response_id = result.get_response()["id"]
    else:
        import tritonclient.grpc as triton_grpc

        headers = spec["headers"]
        client = triton_grpc.InferenceServerClient(url=spec["url"])
        ready = client.is_server_ready(headers=headers) and client.is_model_ready(model, headers=headers)
        meta = client.get_model_metadata(model, headers=headers, as_json=True)
        tensor = triton_grpc.InferInput("input-0", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        wanted = triton_grpc.InferRequestedOutput(output)
        result = client.infer(model, [tensor], outputs=[wanted], headers=headers, request_id="triton-grpc")
        response_id = result.get_response().id
    return {
        "ready": bool(ready),
        "metadata": {"name": meta["name"], "inputs": meta.get("inputs", [])},
        "id": response_id,
        "output": result.as_numpy(output).tolist(),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
