"""A compatibility shim for user code written against Seldon Core's `seldon_core` Python package.

Classes that import `seldon_core.user_model.SeldonComponent`, `SeldonResponse`,
`seldon_core.flask_utils.SeldonMicroserviceException`, the `seldon_core.metrics` helpers or
`seldon_core.storage.Storage` run unchanged on the seldon-mesh runtime, without Seldon's package (whose pins
conflict with ours). Written from Seldon's documented behaviour; the runtime itself (`model_runtime`) never
imports this package: it meets these classes only through the user's object at run time.
"""

from seldon_core.version import __version__

__all__ = ["__version__"]
