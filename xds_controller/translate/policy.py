"""The deployment's traffic policy, as translation reads it: defined in `mesh.spec.traffic` (so that
`mesh.render` reads the annotations exactly as xds_controller does), re-exported here for translation."""

from mesh.spec.traffic import (
    DEFAULT_BUFFER_BYTES,
    DEFAULT_REQUEST_LIMIT_BYTES,
    DEFAULT_RETRIES,
    TrafficPolicy,
    policy_of,
)

__all__ = [
    "DEFAULT_BUFFER_BYTES",
    "DEFAULT_REQUEST_LIMIT_BYTES",
    "DEFAULT_RETRIES",
    "TrafficPolicy",
    "policy_of",
]
