"""A model whose predict raises an unexpected exception (a bug in user code)."""


class Broken:
    def predict(self, X, names, meta):
        raise ZeroDivisionError("the model divided by zero")
