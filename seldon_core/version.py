"""The Seldon Core Python API line this shim follows (1.18), marked as seldon-mesh's own build."""

__version__ = "1.18.0+seldon.mesh"
