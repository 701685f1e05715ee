"""Send texts to a V2 model with tritonclient, in a process of its own (tritonclient's generated protos
and ours both define `inference.*` in protobuf's default pool): `python triton_texts.py '<json spec>'`.

The spec names the transport (http or grpc), the url, the model, gRPC headers, the input name and the
texts (a BYTES tensor, no content type: strings by default); the script prints readiness, metadata, the
`output` tensor's elements decoded as JSON (MLServer's `hg_jsonlist`), or the error the server gave.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np


def main(spec: dict[str, Any]) -> dict[str, Any]:
    texts = np.asarray([t.encode() for t in spec["texts"]], dtype=np.object_)
    model, name = spec["model"], spec["input"]
    if spec["transport"] == "http":
        import tritonclient.http as triton
        from tritonclient.utils import InferenceServerException

        client: Any = triton.InferenceServerClient(url=spec["url"])
        headers: dict[str, str] | None = None
        tensor: Any = triton.InferInput(name, [len(texts)], "BYTES")
        tensor.set_data_from_numpy(texts, binary_data=False)
        wanted: Any = triton.InferRequestedOutput("output", binary_data=False)
    else:
        import tritonclient.grpc as triton_grpc
        from tritonclient.utils import InferenceServerException

        client = triton_grpc.InferenceServerClient(url=spec["url"])
        headers = spec["headers"]
        tensor = triton_grpc.InferInput(name, [len(texts)], "BYTES")
        tensor.set_data_from_numpy(texts)
        wanted = triton_grpc.InferRequestedOutput("output")
    ready = client.is_server_ready(headers=headers) and client.is_model_ready(model, headers=headers)
    meta = client.get_model_metadata(model, headers=headers)
    meta = meta if isinstance(meta, dict) else {"name": meta.name, "platform": meta.platform}
    answer: dict[str, Any] = {"ready": bool(ready), "metadata": {k: meta[k] for k in ("name", "platform")}}
    try:
        result = client.infer(model, [tensor], outputs=[wanted], headers=headers)
    except InferenceServerException as exc:
        answer["error"] = {"status": str(exc.status()), "message": str(exc.message())}
        return answer
    output = result.as_numpy("output")
    answer["shape"] = list(output.shape)
    answer["output"] = [json.loads(item) for item in output.reshape(-1)]
    return answer


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
