"""`Payload`: a message in the protocol it arrived in, translated only when a node speaks the other one.

A V2 request that only meets V2 nodes is never turned into Seldon JSON (so FP32 stays FP32), and a
Seldon request that only meets Seldon nodes is never turned into tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from extproc.codecs.translate import decode_v2_tensors, seldon_to_v2_inputs

Json = dict[str, Any]
Protocol = Literal["seldon", "v2"]


@dataclass(frozen=True)
class Payload:
    protocol: Protocol
    # Seldon: the SeldonMessage JSON (without meta). V2: {"tensors": [...], "parameters"?: {...}}.
    body: Json
    # The V2 datatype of the client's single input, so numbers come back in the type they went in.
    hint: str | None = field(default=None, compare=False)

    @classmethod
    def seldon(cls, message: Json, hint: str | None = None) -> Payload:
        return cls("seldon", {k: v for k, v in message.items() if k not in ("meta", "status")}, hint)

    @classmethod
    def v2(cls, tensors: list[Json], hint: str | None = None) -> Payload:
        return cls("v2", {"tensors": tensors}, hint)

    def as_seldon(self, like: Json | None = None) -> Json:
        if self.protocol == "seldon":
            return self.body
        return decode_v2_tensors(self.body["tensors"], like)

    def as_v2(self) -> list[Json]:
        if self.protocol == "v2":
            tensors: list[Json] = self.body["tensors"]
            return tensors
        return seldon_to_v2_inputs(self.body, self.hint)

    def with_hint(self, hint: str | None) -> Payload:
        return Payload(self.protocol, self.body, hint)
