#!/usr/bin/env bash
# The Helm 4 post-renderer plugin's command: `rewriter render` with the user's
# --post-renderer-args, the rendered manifests (hooks included) on stdin, the result on
# stdout. Helm runs it with HELM_PLUGIN_DIR, HELM_PLUGIN_NAME and the user's environment
# (REWRITER_* options, HELM_NAMESPACE when set).
#
# Helm 4 discards this process's stderr and reports only "plugin exited with error", so
# unless the user chose a log file (--log-file / REWRITER_LOG_FILE), everything rewriter
# writes to stderr is also appended to
# ${XDG_STATE_HOME:-~/.local/state}/rewriter/helm-post-renderer.log.
set -euo pipefail

log_file_given() {
  local arg
  for arg in "$@"; do
    case "$arg" in
      --log-file | --log-file=*) return 0 ;;
    esac
  done
  [[ -n "${REWRITER_LOG_FILE:-}" ]]
}

log=""
if ! log_file_given "$@"; then
  state="${XDG_STATE_HOME:-}"
  if [[ -z "$state" && -n "${HOME:-}" ]]; then
    state="$HOME/.local/state"
  fi
  # No writable state directory: run without a log rather than fail the install.
  if [[ -n "$state" ]] && mkdir -p "$state/rewriter" 2>/dev/null && [[ -w "$state/rewriter" ]]; then
    log="$state/rewriter/helm-post-renderer.log"
  fi
fi

# rewriter from PATH (pip install), or REWRITER_BIN to pick another one.
rewriter="${REWRITER_BIN:-$(command -v rewriter || true)}"
if [[ -z "$rewriter" ]]; then
  msg="error: rewriter is not on PATH: install it (pip install .) or set REWRITER_BIN to its path"
  echo "$msg" >&2
  if [[ -n "$log" ]]; then
    echo "$msg" >>"$log"
  fi
  exit 1
fi

if [[ -z "$log" ]]; then
  exec "$rewriter" render "$@"
fi
# stdout straight through (fd 3); stderr to Helm and to the log. With pipefail the exit
# status is rewriter's.
{ "$rewriter" render "$@" 2>&1 1>&3 3>&- | tee -a "$log" >&2; } 3>&1
