"""Outlier, adversarial and drift detectors with the contract of Seldon's alibi-detect server.

The server (`python -m detector_server`) receives the payload logger's CloudEvents (a node's `logger.url`
points at it), runs an alibi-detect detector loaded from its saved folder, answers with the result, posts it
as a CloudEvent to `--reply_url`, and exposes its scores as Prometheus metrics. It runs in a virtual
environment of its own (`envs`: alibi-detect pins numpy below 2), so it imports nothing of ours, and this
`__init__` imports nothing at all: `mesh.cli` imports `detector_server.envs` from our own venv.

Modules: `protocols` (payload to numpy), `detectors` (the three kinds around an alibi-detect detector),
`events` (CloudEvents attributes, the reply, redelivered ids), `metrics`, `settings` (Seldon's flags),
`server` (aiohttp), `envs` (the environment), `render`-free: cluster objects are `mesh.render.detectors`'.
"""
