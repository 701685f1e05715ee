"""The routing meaning of one SeldonDeployment, once, for every ingress rendering to spell out.

What xds_controller programs into the local gateway (`xds_controller.translate.routes`), as plain values:
per transport (gRPC first, then REST), one pinned rule per predictor (shadows too) for a request with the
header `Seldon-Predictor: <name>`, only when there are two predictors or more, then the split by `traffic`
over the non-shadow predictors. Every rule mirrors to every shadow (its `traffic` as the percentage, 100
when it is 0 or 100, as in Seldon) and carries the deployment's retries and the transport's timeout from
`mesh.spec.traffic.policy_of`. `istio` and `gateway_api` render these rules, each in its own API; the
agreement test checks that both mean what the local Envoy configuration means. Ahead of them, the local
gateway answers a REST request whose Content-Length is over the deployment's request limit 413; Istio
matches the same lengths with `content_length_over` (it has no range match).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mesh.render.names import predictor_service
from mesh.render.settings import RenderSettings
from mesh.spec import PredictorSpec, SeldonDeployment
from mesh.spec.traffic import TrafficPolicy, policy_of

# The predictor Service's ports (names.predictor_service).
REST_PORT = 8000
GRPC_PORT = 5001
# The response header naming the predictor that answered, and the request header that pins one.
PREDICTOR_HEADER = "Seldon-Predictor"
PINNING_HEADER = "seldon-predictor"
# gRPC services a deployment answers: Seldon's (v1 constants.go) plus reflection and health, as locally.
GRPC_SERVICE_PREFIXES = ("seldon.protos", "tensorflow.serving", "inference", "grpc.reflection", "grpc.health")
GRPC_SERVICE_REGEX = "(" + "|".join(p.replace(".", r"\.") for p in GRPC_SERVICE_PREFIXES) + r")\.[^/]+"
GRPC_PATH_REGEX = f"/{GRPC_SERVICE_REGEX}/[^/]+"


class Transport(StrEnum):
    REST = "http"
    GRPC = "grpc"

    @property
    def port(self) -> int:
        return GRPC_PORT if self is Transport.GRPC else REST_PORT


@dataclass(frozen=True)
class Backend:
    """A predictor's Service as a destination: `weight` of the split (100 when it is the only one), or
    `percent` of the requests mirrored to it."""

    predictor: str
    service: str
    share: int


@dataclass(frozen=True)
class Retries:
    attempts: int
    retry_on: str
    per_try_timeout_ms: int | None


@dataclass(frozen=True)
class Rule:
    """One route: `pinned` names the predictor a `Seldon-Predictor` request header must name, if any."""

    name: str
    transport: Transport
    pinned: str | None
    backends: tuple[Backend, ...]
    mirrors: tuple[Backend, ...]
    timeout_ms: int | None
    retries: Retries


def service_host(deployment: SeldonDeployment, predictor: PredictorSpec, settings: RenderSettings) -> str:
    """The predictor Service's cluster-wide name, `<service>.<namespace>.svc.<cluster domain>`."""
    namespace = deployment.metadata.namespace
    return f"{predictor_service(deployment, predictor)}.{namespace}.svc.{settings.cluster_domain}"


def rest_prefix(deployment: SeldonDeployment) -> str:
    return f"/seldon/{deployment.metadata.namespace}/{deployment.metadata.name}/"


def rule_name(deployment: SeldonDeployment, transport: Transport, pinned: str | None = None) -> str:
    """`<ns>.<name>[.pin.<predictor>].<http|grpc>`: the local gateway's route names."""
    meta = deployment.metadata
    pin = f".pin.{pinned}" if pinned else ""
    return f"{meta.namespace}.{meta.name}{pin}.{transport.value}"


def _backend(deployment: SeldonDeployment, predictor: PredictorSpec, share: int) -> Backend:
    return Backend(predictor.name, predictor_service(deployment, predictor), share)


def _split(deployment: SeldonDeployment) -> tuple[Backend, ...]:
    primaries = [p for p in deployment.spec.predictors if not p.shadow]
    weighted = [(p, p.traffic) for p in primaries if p.traffic > 0] or [(p, 1) for p in primaries]
    if len(weighted) == 1:
        return (_backend(deployment, weighted[0][0], 100),)
    return tuple(_backend(deployment, p, weight) for p, weight in weighted)


def _mirrors(deployment: SeldonDeployment) -> tuple[Backend, ...]:
    shadows = [p for p in deployment.spec.predictors if p.shadow]
    return tuple(_backend(deployment, p, p.traffic if 0 < p.traffic < 100 else 100) for p in shadows)


def _retries(policy: TrafficPolicy) -> Retries:
    return Retries(policy.retries, policy.retry_on, policy.per_try_timeout_ms)


def rules(deployment: SeldonDeployment) -> list[Rule]:
    """The deployment's routes in match order: gRPC pins, gRPC split, REST pins, REST split."""
    policy = policy_of(deployment.annotations)
    mirrors = _mirrors(deployment)
    pinnable = deployment.spec.predictors if len(deployment.spec.predictors) > 1 else ()
    out = []
    for transport in (Transport.GRPC, Transport.REST):
        timeout = policy.grpc_timeout_ms if transport is Transport.GRPC else policy.rest_timeout_ms
        for predictor in pinnable:
            out.append(
                Rule(
                    rule_name(deployment, transport, predictor.name),
                    transport,
                    predictor.name,
                    (_backend(deployment, predictor, 100),),
                    mirrors,
                    timeout,
                    _retries(policy),
                )
            )
        out.append(
            Rule(
                rule_name(deployment, transport),
                transport,
                None,
                _split(deployment),
                mirrors,
                timeout,
                _retries(policy),
            )
        )
    return out


def request_limit(deployment: SeldonDeployment) -> int:
    """The request (and answer) limit in bytes, REST and gRPC alike: `seldon.io/grpc-max-message-size`."""
    return policy_of(deployment.annotations).request_limit_bytes


def content_length_over(limit: int) -> str:
    """A regular expression (RE2, matched in full) for exactly the decimal numbers over `limit`, leading
    zeros allowed: what the local gateway's `content-length` range match `[limit + 1, 2**63)` takes.
    Numbers with more digits than `limit`, then for each digit of `limit` below 9 its digits before,
    a greater digit, and any digits after (2147483647: `[3-9][0-9]{9}`, `2[2-9][0-9]{8}`, ...)."""
    text = str(limit)
    alternatives = [f"[1-9][0-9]{{{len(text)},}}"]
    for index, digit in enumerate(text):
        if digit == "9":
            continue
        after = len(text) - index - 1
        greater = "9" if digit == "8" else f"[{int(digit) + 1}-9]"
        tail = f"[0-9]{{{after}}}" if after > 1 else "[0-9]" * after
        alternatives.append(text[:index] + greater + tail)
    return "0*(" + "|".join(alternatives) + ")"


def sticky_header(deployment: SeldonDeployment) -> str | None:
    return policy_of(deployment.annotations).sticky_header
