#!/usr/bin/env bash
# Sets up the environment if needed, then runs the test suite. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
exec "${MBVC_VENV:-$root/.venv}/bin/python" -m pytest "$@"
