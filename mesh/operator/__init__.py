"""seldon-mesh package."""
