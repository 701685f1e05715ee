"""A router: child 1 for a positive first value, else child 0."""


class Router:
    def route(self, features, feature_names):
        return 1 if features.reshape(-1)[0] > 0 else 0
