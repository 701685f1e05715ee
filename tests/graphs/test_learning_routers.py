"""An epsilon-greedy router shifts traffic to the branch that earns rewards, and remembers it across an
extproc restart (its state is in the mesh's state dir)."""

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


def _share_right(mesh: Mesh, count: int = 300) -> float:
    replies = many(mesh, "bandit", ndarray([[1.0]]), count)
    return sum(1 for r in replies if r["meta"]["routing"]["eg"] == 1) / count


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

    pid_file = mesh.state_dir / "extproc.pid"
    old_pid = int(pid_file.read_text())
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old_pid), 10, "extproc to die")
    wait_for(lambda: predict(mesh, "bandit", ndarray([[1.0]])).status_code == 200, 30, "extproc to be back")
    assert int(pid_file.read_text()) != old_pid
    assert _share_right(mesh) > 0.85
