"""The Kubernetes operator (`seldon-mesh operator`): SeldonDeployments reconciled on kopf.

`main` parses the chart's flags and environment (`config`), `handlers` registers the kopf handlers,
`reconcile` validates (`mesh.spec`), renders (`mesh.render`), server-side applies, prunes and writes
status (`status`, pure), `webhook` serves the admission webhook with the certificates of `certs`, and
`kube` names the API resources. Imports `mesh.spec` and `mesh.render` only.
"""
