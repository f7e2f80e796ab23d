#!/usr/bin/env bash
# Second command: install into .venv with the test tools and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Install only when pyproject.toml or the pinned versions (deploy/constraints.txt) changed since the last install (its hash is kept in .venv).
STAMP=.venv/.appealflow-test-installed
WANT="$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml","rb").read() + open("deploy/constraints.txt","rb").read()).hexdigest())')"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c deploy/constraints.txt -e ".[test]"
    echo "$WANT" > "$STAMP"
fi
# The browser tests (tests/browser) drive Debian's Chromium, with a CJK font for the Chinese pages;
# Playwright never downloads a browser of its own here.
if [ ! -x /usr/bin/chromium ] || ! fc-list :lang=zh 2>/dev/null | grep -q .; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
fi
.venv/bin/ruff check .
bash deploy/typecheck.sh
# Three test processes (pytest-xdist): most tests spend part of their time waiting on real servers
# (outages, leases, deliveries), so three keep two cores busier than two do (240 s against 282 s).
exec .venv/bin/python -m pytest -n "${APPEALFLOW_TEST_PROCESSES:-3}" "$@"
