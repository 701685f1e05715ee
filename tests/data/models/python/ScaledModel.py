"""predict(X, names, meta) with typed graph parameters, tags, metrics, feedback and metadata."""

from model_runtime import BadRequest, SeldonResponse


class ScaledModel:
    def __init__(self, scale: float = 1.0, offset: int = 0, label: str = "", enabled: bool = True) -> None:
        self.scale = scale
        self.offset = offset
        self.label = label
        self.enabled = enabled
        self.rewards: list[float] = []
        self.loaded = False

    def load(self) -> None:
        self.loaded = True

    def predict(self, X, names, meta):
        if not self.loaded:
            raise RuntimeError("load() was not called")
        if X.size and X.reshape(-1)[0] < -1000:
            raise BadRequest("values below -1000 are not accepted")
        tags = {
            "label": self.label,
            "param_types": [type(v).__name__ for v in (self.scale, self.offset, self.label, self.enabled)],
            "enabled": self.enabled,
            "seen_puid": meta["puid"],
            "seen_names": list(names),
        }
        return SeldonResponse(
            X * self.scale + self.offset, tags=tags, metrics=[{"type": "COUNTER", "key": "calls", "value": 1}]
        )

    def tags(self):
        return {"model": "scaled", "label": "overridden by the per-request tag"}

    def metrics(self):
        return [{"type": "GAUGE", "key": "scale", "value": self.scale}]

    def send_feedback(self, features, names, reward, truth, routing=None):
        self.rewards.append(reward)
        return {
            "rewards": self.rewards,
            "routing": routing,
            "truth": truth.tolist() if truth is not None else None,
        }

    def health_status(self):
        return [[self.scale, float(len(self.rewards))]]

    def init_metadata(self):
        return {
            "name": "scaled",
            "versions": ["v1"],
            "platform": "python",
            "inputs": [{"messagetype": "tensor", "schema": {"names": ["a", "b"], "shape": [2]}}],
            "outputs": [{"messagetype": "tensor", "schema": {"shape": [2]}}],
            "custom": {"author": "tests"},
        }
