#!/usr/bin/env bash
# The Helm 4 post-renderer plugin's command: `rewriter render` with the user's
# --post-renderer-args, the rendered manifests (hooks included) on stdin, the result on
# stdout. Helm runs it with HELM_PLUGIN_DIR, HELM_PLUGIN_NAME and the user's environment
# (REWRITER_* options, HELM_NAMESPACE when set). Helm 4 discards this process's stderr
# and reports only "plugin exited with error", so warnings and errors also go to a log
# file: --log-file / REWRITER_LOG_FILE when given, else
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

if ! log_file_given "$@"; then
  state="${XDG_STATE_HOME:-}"
  if [[ -z "$state" && -n "${HOME:-}" ]]; then
    state="$HOME/.local/state"
  fi
  # No writable state directory: run without a log file rather than fail the install.
  if [[ -n "$state" ]] && mkdir -p "$state/rewriter" 2>/dev/null && [[ -w "$state/rewriter" ]]; then
    export REWRITER_LOG_FILE="$state/rewriter/helm-post-renderer.log"
  fi
fi

# rewriter from PATH (pip install), or REWRITER_BIN to pick another one.
if [[ -n "${REWRITER_BIN:-}" ]]; then
  exec "$REWRITER_BIN" render "$@"
elif command -v rewriter >/dev/null 2>&1; then
  exec rewriter render "$@"
else
  msg="rewriter is not on PATH: install it (pip install .) or set REWRITER_BIN to its path"
  echo "error: $msg" >&2
  if [[ -n "${REWRITER_LOG_FILE:-}" ]]; then
    echo "error: $msg" >>"$REWRITER_LOG_FILE"
  fi
  exit 1
fi
