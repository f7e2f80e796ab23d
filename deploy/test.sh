#!/usr/bin/env bash
# Second command: install into .venv with the test tools and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Install only when pyproject.toml changed since the last install (its hash is kept in .venv).
STAMP=.venv/.appealflow-test-installed
WANT="$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest())')"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[test]"
    echo "$WANT" > "$STAMP"
fi
.venv/bin/ruff check .
# Two test processes (pytest-xdist): most tests wait on real servers, so two share two cores well.
exec .venv/bin/python -m pytest -n "${APPEALFLOW_TEST_PROCESSES:-2}" "$@"
