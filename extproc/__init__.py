"""extproc: the gRPC service next to Envoy that runs inference graphs and translates protocols.

Layers, imported one way: `codecs` (pure protocol translation) <- `graph` (pure executor over an injected
node client) <- `nodes` (pooled REST/gRPC node calls) <- `server` (ext_proc phase dispatcher, gRPC graph
edges). `config` is the graph config contract with the control plane; `events` the payload-logger hook.
It imports nothing of `mesh`, `xds_controller` or `model_runtime`.
"""
