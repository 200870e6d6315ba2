"""The hosts that are not a plain pipe, each translating its contract into a render: a
kustomize KRM function (krm) and the midstream kustomization (kustomization). The CLI
(rewriter/cli.py), Argo CD's plugin (argocd/) and the Helm plugin (helm-plugin/) are the
others."""
