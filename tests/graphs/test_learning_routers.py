"""The learning routers (epsilon-greedy, Thompson sampling) shift traffic to the branch that earns rewards,
and remember it across an extproc restart (their state is in the mesh's state dir)."""

from __future__ import annotations

import os
import signal

import grpc
import httpx
from google.protobuf import json_format

from generated.seldon import prediction_pb2, prediction_pb2_grpc
from tests.graphs.client import many, ndarray, predict
from tests.helpers.mesh import Mesh, pid_alive, wait_for

FEEDBACK = "/seldon/default/bandit/api/v1.0/feedback"


def _share_right(mesh: Mesh, count: int = 300, name: str = "bandit", router: str = "eg") -> float:
    replies = many(mesh, name, ndarray([[1.0]]), count)
    return sum(1 for r in replies if r["meta"]["routing"][router] == 1) / count


def _restart_extproc(mesh: Mesh, name: str) -> None:
    pid_file = mesh.state_dir / "extproc.pid"
    old_pid = int(pid_file.read_text())
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old_pid), 10, "extproc to die")
    wait_for(lambda: predict(mesh, name, ndarray([[1.0]])).status_code == 200, 30, "extproc to be back")
    assert int(pid_file.read_text()) != old_pid


def test_epsilon_greedy_learns_from_feedback_and_survives_a_restart(mesh: Mesh) -> None:
    with httpx.Client(base_url=mesh.gateway, timeout=30) as client:
        for _ in range(50):
            reply = client.post(FEEDBACK, json={"response": {"meta": {"routing": {"eg": 0}}}, "reward": 0.0})
            assert reply.status_code == 200, reply.text
            reply = client.post(FEEDBACK, json={"response": {"meta": {"routing": {"eg": 1}}}, "reward": 1.0})
            assert reply.status_code == 200, reply.text
    # the same feedback over gRPC (seldon.protos.Seldon/SendFeedback) is taken too
    with grpc.insecure_channel(f"127.0.0.1:{mesh.port}") as channel:
        stub = prediction_pb2_grpc.SeldonStub(channel)
        feedback = json_format.ParseDict(
            {"response": {"meta": {"routing": {"eg": 1}}}, "reward": 1.0}, prediction_pb2.Feedback()
        )
        reply = stub.SendFeedback(
            feedback, metadata=(("seldon", "bandit"), ("namespace", "default")), timeout=30
        )
        assert dict(reply.meta.routing) == {"eg": 1}
    # epsilon 0.1 over two branches: the best branch gets about 95% of the traffic.
    assert _share_right(mesh) > 0.85

    _restart_extproc(mesh, "bandit")
    assert _share_right(mesh) > 0.85


def test_thompson_sampling_learns_from_feedback_and_survives_a_restart(mesh: Mesh) -> None:
    # no feedback yet: both branches have the same Beta(1, 1) prior, so traffic splits about evenly
    # (300 requests: a standard deviation of 0.03 around 0.5)
    assert 0.35 < _share_right(mesh, name="thompson", router="ts") < 0.65
    with httpx.Client(base_url=mesh.gateway, timeout=30) as client:
        for _ in range(30):
            for branch, reward in ((0, 0.0), (1, 1.0)):
                routing = {"response": {"meta": {"routing": {"ts": branch}}}, "reward": reward}
                reply = client.post("/seldon/default/thompson/api/v1.0/feedback", json=routing)
                assert reply.status_code == 200, reply.text
    # Beta(31, 1) against Beta(1, 31): the rewarded branch wins nearly every draw
    assert _share_right(mesh, name="thompson", router="ts") > 0.9

    _restart_extproc(mesh, "thompson")
    assert _share_right(mesh, name="thompson", router="ts") > 0.9
