"""REST transport: the ASGI app and its error mapping."""

from model_runtime.rest.app import RestApp

__all__ = ["RestApp"]
