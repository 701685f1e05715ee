"""Optional adaptive batching of concurrent V2 inference requests (`max_batch_size`, `max_batch_time_ms`).

Requests that arrive while a batch is open are queued; the batch runs when it is full or when the oldest
request has waited `max_batch_time_ms`. Requests with the same inputs (names, datatypes, trailing
dimensions) are concatenated along the first axis into one model call and the outputs are split back by
row counts; a request that cannot be merged, or a model whose outputs do not keep the batch dimension,
is called on its own. Errors stay with the request that caused them.

`make_infer` is what both transports call: direct when batching is off, through the batcher when on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import numpy as np

from model_runtime.dataplane import new_puid
from model_runtime.errors import RuntimeFailure
from model_runtime.inference import InferenceCore
from model_runtime.settings import ServerSettings
from model_runtime.tensors import InferRequest, InferResponse, Tensor

T = TypeVar("T")
Infer = Callable[[InferRequest], Awaitable[InferResponse]]
Blocking = Callable[..., Awaitable[Any]]
Outcome = InferResponse | Exception


def blocking_runner(executor: Executor | None) -> Blocking:
    """Run user code inline on the loop (fastest for small models) or on the configured threads."""

    async def run(function: Callable[..., T], *args: Any) -> T:
        if executor is None:
            return function(*args)
        return await asyncio.get_running_loop().run_in_executor(executor, function, *args)

    return run


def make_infer(core: InferenceCore, settings: ServerSettings, run: Blocking) -> Infer:
    if settings.max_batch_size <= 1:

        async def infer(request: InferRequest) -> InferResponse:
            response: InferResponse = await run(core.infer, request)
            return response

        return infer
    return AdaptiveBatcher(core, settings.max_batch_size, settings.max_batch_time_ms / 1000, run).infer


class AdaptiveBatcher:
    def __init__(self, core: InferenceCore, max_size: int, max_wait_s: float, run: Blocking) -> None:
        self.core = core
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._run = run
        self._pending: list[tuple[InferRequest, asyncio.Future[InferResponse]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def infer(self, request: InferRequest) -> InferResponse:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[InferResponse] = loop.create_future()
        self._pending.append((request, future))
        if len(self._pending) >= self.max_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._run_batch(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch: list[tuple[InferRequest, asyncio.Future[InferResponse]]]) -> None:
        try:
            outcomes: list[Outcome] = await self._run(infer_batch, self.core, [r for r, _ in batch])
        except Exception as exc:
            outcomes = [exc] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def infer_batch(core: InferenceCore, requests: list[InferRequest]) -> list[Outcome]:
    """Each request's response or error, merging requests with the same input layout into one call."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, request in enumerate(requests):
        key = _layout(request)
        if key is None:
            outcomes[index] = _one(core, request)
        else:
            groups.setdefault(key, []).append(index)
    for indexes in groups.values():
        members = [requests[i] for i in indexes]
        for i, outcome in zip(indexes, _merged(core, members), strict=True):
            outcomes[i] = outcome
    return [o if o is not None else RuntimeError("request was not run") for o in outcomes]


def _one(core: InferenceCore, request: InferRequest) -> Outcome:
    try:
        return core.infer(request)
    except RuntimeFailure as exc:
        return exc


def _layout(request: InferRequest) -> tuple[Any, ...] | None:
    """What must agree for requests to be concatenated; None when this one cannot be."""
    if not request.inputs or any(t.data.ndim == 0 or t.datatype == "BYTES" for t in request.inputs):
        return None
    rows = {t.data.shape[0] for t in request.inputs}
    if len(rows) != 1:
        return None
    return (
        request.model_name,
        request.model_version,
        tuple((t.name, t.datatype, t.data.shape[1:]) for t in request.inputs),
    )


def _merged(core: InferenceCore, requests: list[InferRequest]) -> list[Outcome]:
    if len(requests) == 1:
        return [_one(core, requests[0])]
    first = requests[0]
    counts = [r.inputs[0].data.shape[0] for r in requests]
    inputs = [
        Tensor(
            tensor.name,
            tensor.datatype,
            [sum(counts), *tensor.shape[1:]],
            np.concatenate([r.inputs[i].data for r in requests]),
            tensor.parameters,
        )
        for i, tensor in enumerate(first.inputs)
    ]
    merged = InferRequest(first.model_name, first.model_version, inputs, first.id, first.parameters)
    try:
        response = core.infer(merged)
    except RuntimeFailure:
        return [_one(core, r) for r in requests]  # find out whose data it was
    total = sum(counts)
    if any(t.data.ndim == 0 or t.data.shape[0] != total for t in response.outputs):
        return [_one(core, r) for r in requests]
    bounds = np.cumsum(counts)[:-1]
    pieces = [np.split(t.data, bounds) for t in response.outputs]
    outcomes: list[Outcome] = []
    for index, request in enumerate(requests):
        outputs = [
            Tensor(t.name, t.datatype, [counts[index], *t.shape[1:]], parts[index], t.parameters)
            for t, parts in zip(response.outputs, pieces, strict=True)
        ]
        if request.outputs:
            wanted = {o.name for o in request.outputs}
            outputs = [t for t in outputs if t.name in wanted]
            if len(outputs) != len(wanted):
                outcomes.append(_one(core, request))
                continue
        outcomes.append(
            InferResponse(response.model_name, response.model_version, request.id or new_puid(), outputs)
        )
    return outcomes
