#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and installs mbvc with its test extras.
# Idempotent: a second run only re-installs when pyproject.toml changed.
# MBVC_VENV picks the environment folder; MBVC_TORCH the torch requirement to install when
# none is importable (default: torch==2.13.0, whose CPU wheel these machines hold locally;
# on a CUDA machine pip takes the matching CUDA build of the same version).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${MBVC_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "[mbvc] creating virtual environment $venv" >&2
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
if ! "$py" -c "import torch" >/dev/null 2>&1; then
  spec="${MBVC_TORCH:-torch==2.13.0}"
  echo "[mbvc] installing $spec" >&2
  "$py" -m pip install -q "$spec" || "$py" -m pip install -q "torch>=2.2"
fi
stamp="$venv/.mbvc-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[mbvc] installing mbvc[test] (editable)" >&2
  "$py" -m pip install -q -e ".[test]"
  touch "$stamp"
fi
