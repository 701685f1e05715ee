"""The SeldonDeployment spec, the local supervisor, the Kubernetes operator and the CLI."""
