#!/usr/bin/env bash
# First command: install into .venv and run the whole system on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Install only when pyproject.toml or the pinned versions (deploy/constraints.txt) changed since the last install (its hash is kept in .venv),
# so a second `up` starts at once instead of re-resolving every dependency.
STAMP=.venv/.appealflow-installed
WANT="$(.venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(open("pyproject.toml","rb").read() + open("deploy/constraints.txt","rb").read()).hexdigest())')"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ] || [ ! -x .venv/bin/appealflow ]; then
    echo "installing AppealFlow into .venv (pyproject.toml changed or first run)..."
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c deploy/constraints.txt -e .
    echo "$WANT" > "$STAMP"
fi
exec .venv/bin/appealflow up "$@"
