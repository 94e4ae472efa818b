#!/bin/sh
# Runs prism's integration tests with Debian's interpreter (pytest from
# python3-pytest; no pip). Extra arguments go to pytest: run.sh -k status -x
# Exit status: pytest's, except that "no tests collected" (5) is a failure too.
set -u
cd "$(dirname "$0")/../.." || exit 1
if [ ! -x build/prism ] && [ -z "${PRISM_BIN:-}" ]; then
    echo "run.sh: build/prism is missing; run make first" >&2
    exit 1
fi
/usr/bin/python3 -m pytest -q -p no:cacheprovider -rfE tests/integration "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "run.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
