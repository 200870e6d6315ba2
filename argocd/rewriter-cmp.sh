#!/usr/bin/env bash
# rewriter-cmp: the commands of the Argo CD Config Management Plugin (argocd/plugin.yaml).
# Installed in the sidecar image as /usr/local/bin/rewriter-cmp (see argocd/Dockerfile).
#
#   rewriter-cmp discover   print a line when this Application asked for the plugin
#   rewriter-cmp generate   render the app directory and pipe it through `rewriter`
#
# The cmp-server runs both in the app's source directory, stdin /dev/null, with the
# sidecar's environment plus ARGOCD_APP_*, KUBE_VERSION, KUBE_API_VERSIONS, the
# Application's `plugin.env` as ARGOCD_ENV_<NAME>, and its `plugin.parameters` as
# ARGOCD_APP_PARAMETERS (JSON) and PARAM_<NAME>. A non-zero exit fails the request and
# Argo CD shows our stderr; any stdout it gets is applied, and an empty stream with
# auto-prune deletes the application's resources, so every failure exits non-zero.
set -euo pipefail
shopt -s nullglob
export LC_ALL=C

here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"

die() {
  printf 'rewriter-cmp: error: %s\n' "$*" >&2
  exit 1
}

# discover: claim an Application only when it asks for rewriter, never every app.
# Argo CD also runs discovery for Applications without any `plugin` section (with an
# empty environment), and a plugin that matched there would take them all over.
discover() {
  if [[ -f .rewriter.yaml ]]; then
    echo "rewriter: .rewriter.yaml"
  elif compgen -e ARGOCD_ENV_REWRITER_ >/dev/null; then
    echo "rewriter: plugin.env"
  elif [[ -n "${ARGOCD_APP_PARAMETERS:-}" && "${ARGOCD_APP_PARAMETERS}" != "null" \
    && "${ARGOCD_APP_PARAMETERS}" != "[]" ]]; then
    echo "rewriter: plugin.parameters"
  fi
}

# Defaults for the sidecar, each only when the sidecar did not set it.
sidecar_defaults() {
  local tmp="${TMPDIR:-/tmp}"
  # HOME is not writable for uid 999: Helm's own files go to the sidecar's /tmp.
  export HELM_CACHE_HOME="${HELM_CACHE_HOME:-$tmp/helm/cache}"
  export HELM_CONFIG_HOME="${HELM_CONFIG_HOME:-$tmp/helm/config}"
  export HELM_DATA_HOME="${HELM_DATA_HOME:-$tmp/helm/data}"
  # The probe cache needs an absolute path on the sidecar's own volume: the request's
  # work directory is deleted afterwards.
  export REWRITER_CACHE="${REWRITER_CACHE:-$tmp/rewriter/probes.sqlite}"
  case "$REWRITER_CACHE" in
    /* | redis://* | rediss://* | none) ;;
    *) die "REWRITER_CACHE must be an absolute path, a redis:// URL or none, not '$REWRITER_CACHE'" ;;
  esac
  # Probes must end well inside the repo-server's 60 s gRPC deadline.
  if [[ -z "${REWRITER_DEADLINE:-}" ]]; then
    export REWRITER_DEADLINE=40
  fi
  # An Application may lower it (its plugin.env), never raise it past the sidecar's.
  if [[ -n "${ARGOCD_ENV_REWRITER_DEADLINE:-}" ]]; then
    local lower="$ARGOCD_ENV_REWRITER_DEADLINE"
    if ! [[ "$lower" =~ ^[0-9]+([.][0-9]+)?$ ]] \
      || ! awk -v a="$lower" -v s="$REWRITER_DEADLINE" 'BEGIN { exit !(a > 0 && a <= s) }'; then
      die "ARGOCD_ENV_REWRITER_DEADLINE '$lower': a number of seconds above 0 and at most the sidecar's $REWRITER_DEADLINE"
    fi
    export REWRITER_DEADLINE="$lower"
  fi
  # A vendor's rules next to the manifests: repository content, so rewriter lets it set
  # rules and fields only (--repository-config), below the sidecar's and the
  # Application's own configuration.
  if [[ -f .rewriter.yaml ]]; then
    export REWRITER_REPOSITORY_CONFIG="$PWD/.rewriter.yaml"
  fi
}

is_kustomization() {
  [[ -f kustomization.yaml || -f kustomization.yml || -f Kustomization ]]
}

render_helm() {
  local args=(template "$release" . --include-crds)
  if [[ -n "${ARGOCD_APP_NAMESPACE:-}" ]]; then
    args+=(--namespace "$ARGOCD_APP_NAMESPACE")
  fi
  if [[ -n "${KUBE_VERSION:-}" ]]; then
    args+=(--kube-version "$KUBE_VERSION")
  fi
  if [[ -n "${KUBE_API_VERSIONS:-}" ]]; then
    local api apis
    IFS=, read -ra apis <<<"$KUBE_API_VERSIONS"
    for api in "${apis[@]}"; do
      args+=(--api-versions "$api")
    done
  fi
  args+=("${helm_args[@]}")
  # Dependencies declared but not vendored: fetch them.
  if grep -q '^dependencies:' Chart.yaml && [[ ! -d charts ]]; then
    add_dependency_repositories
    helm dependency build . >&2
  fi
  helm "${args[@]}"
}

# `helm dependency build` fetches from OCI registries and file:// paths by themselves, but
# from an HTTP(S) repository only once `helm repo add` made it known. Add each repository
# Chart.yaml (and so Chart.lock) names, unless the sidecar's repositories file already has
# it: that file (HELM_REPOSITORY_CONFIG, e.g. mounted from a Secret) is how credentials
# for chart repositories reach helm, because argocd-repo-server hands plugins none (only
# git credentials, with provideGitCreds). It is copied for the request: a mounted file is
# read-only, and requests must not see each other's additions.
add_dependency_repositories() {
  local config="${HELM_REPOSITORY_CONFIG:-$HELM_CONFIG_HOME/repositories.yaml}"
  local url known name
  if [[ -f "$config" ]]; then
    cp -- "$config" "$request_tmp/repositories.yaml"
  fi
  export HELM_REPOSITORY_CONFIG="$request_tmp/repositories.yaml"
  known="$(helm repo list 2>/dev/null | awk 'NR > 1 {print $2}')" || true
  while read -r url; do
    case "$url" in http://* | https://*) ;; *) continue ;; esac
    if grep -qxF -e "${url%/}" -e "${url%/}/" <<<"$known"; then
      continue
    fi
    name="rewriter-$(printf '%s' "$url" | sha256sum | cut -c1-12)"
    helm repo add "$name" "$url" >&2 || die "cannot add chart repository $url for the dependencies of Chart.yaml (credentials go in the sidecar's HELM_REPOSITORY_CONFIG)"
    known+=$'\n'"${url%/}"
  done < <(helm dependency list . 2>/dev/null | awk 'NR > 1 && NF >= 3 {print $3}' | sort -u)
}

render_kustomize() {
  local opts=()
  # Build options for every app, set by the Argo CD admin on the sidecar (like
  # kustomize.buildOptions in argocd-cm), e.g. "--enable-helm".
  read -ra opts <<<"${KUSTOMIZE_BUILD_OPTIONS:-}"
  kustomize build . "${opts[@]}"
}

# Plain manifests: the directory's *.yaml, *.yml and *.json files (not recursive, like an
# Argo CD directory app), each its own documents.
render_plain() {
  local file first
  for file in "${files[@]}"; do
    first=""
    IFS= read -r first <"$file" || true
    if [[ "$first" != ---* ]]; then
      printf -- '---\n'
    fi
    cat -- "$file"
    if [[ -n "$(tail -c 1 -- "$file")" ]]; then
      printf '\n'
    fi
  done
}

render() {
  if [[ -f Chart.yaml ]]; then
    render_helm
  elif is_kustomization; then
    render_kustomize
  else
    render_plain
  fi
}

generate() {
  sidecar_defaults
  # This request's own files, gone when it ends (the sidecar's /tmp outlives requests).
  request_tmp="$(mktemp -d "${TMPDIR:-/tmp}/rewriter-cmp.XXXXXX")"
  trap 'rm -rf -- "$request_tmp"' EXIT

  # Parameters and Application env, checked and turned into arguments (NUL-separated).
  local tokens=() token
  mapfile -d '' tokens < <(python3 "$here/cmp_args.py")
  wait "$!" || exit 1
  rewriter_args=()
  helm_args=()
  release=""
  for token in "${tokens[@]}"; do
    case "$token" in
      r:*) rewriter_args+=("${token#r:}") ;;
      h:*) helm_args+=("${token#h:}") ;;
      n:*) release="${token#n:}" ;;
    esac
  done
  release="${release:-$(basename "$PWD")}"

  files=()
  if [[ ! -f Chart.yaml ]] && ! is_kustomization; then
    files=(*.yaml *.yml *.json)
    if [[ ${#files[@]} -eq 0 ]]; then
      die "nothing to render in ${ARGOCD_APP_SOURCE_PATH:-$PWD}: no Chart.yaml, no kustomization.yaml, no *.yaml, *.yml or *.json files"
    fi
  fi

  # The render and the rewrite in one pipeline: with pipefail a failed `helm template`
  # or `kustomize build` fails the request even if rewriter got part of a stream.
  local out
  out="$(render | rewriter "${rewriter_args[@]}")"
  if [[ ! "$out" =~ [^[:space:]] ]]; then
    die "the app rendered no manifests; refusing to send Argo CD an empty stream (with auto-prune it would delete every resource of the app)"
  fi
  printf '%s\n' "$out"
}

case "${1:-}" in
  discover) discover ;;
  generate) generate ;;
  *)
    echo "usage: rewriter-cmp discover|generate" >&2
    exit 2
    ;;
esac
