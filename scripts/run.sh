#!/usr/bin/env bash
# make run: starts prism in the foreground on its embedded defaults (or on
# $PRISM_CONFIG if set). Stop it with Ctrl-C (SIGINT: drains, then exits 0).
set -euo pipefail
cd "$(dirname "$0")/.."
args=(serve)
if [ -n "${PRISM_CONFIG:-}" ]; then
    args+=(--config "$PRISM_CONFIG")
fi
echo "prism: starting build/prism ${args[*]} (data in ./var; Ctrl-C to stop)" >&2
exec build/prism "${args[@]}"
