"""A model whose load() fails, so the runtime must report not-ready with the reason."""


class BadLoad:
    def load(self):
        raise FileNotFoundError("weights.bin is missing from the model folder")

    def predict(self, X, names):
        return X
