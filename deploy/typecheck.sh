#!/usr/bin/env bash
# mypy over the installed layout: `appealflow.models` is the repository's models/ folder and so on,
# which mypy cannot follow through setuptools' editable-install finder, so it reads a tree of links.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/appealflow"
for entry in "$root"/appealflow/*; do [ "${entry##*/}" = __pycache__ ] || ln -s "$entry" "$tree/appealflow/"; done
for folder in models api flows workers notifications; do ln -s "$root/$folder" "$tree/appealflow/$folder"; done
cd "$tree"
exec "$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" --cache-dir "$root/.mypy_cache" -p appealflow "$@"
