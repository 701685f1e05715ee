"""The explainer server: alibi explanations of a predictor's model, asked for through the mesh.

Seldon Core runs a predictor's `explainer:` as its own Deployment (the alibi explain server image) that
answers `/api/v1.0/explain` (Seldon protocol) or `/v2/models/<name>/infer` (V2) and calls the predictor's
model for the predictions a black-box method needs. This package is that server. alibi pins numpy below 2,
so it runs in an environment of its own (`env`), never in the runtime's: every module here but `env`
imports only the standard library, numpy, dill and alibi, and nothing else of ours.

Modules: `env` (the environment, made on first use; runs in the mesh's venv), `cli` (arguments),
`payloads` (Seldon v1 / V2 requests and answers), `model_client` (predictions through the gateway),
`explainers` (building alibi explainers from a saved one or from `initParameters`), `server` (HTTP).
"""
