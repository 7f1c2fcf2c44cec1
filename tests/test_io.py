"""Atomic writes give files the mode a plain ``open`` would, under the process umask."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from mbvc.io import atomic_path, atomic_write

SCRIPT = """
import os, stat, sys
os.umask(int(sys.argv[2], 8))
from mbvc.io import atomic_path, atomic_write
with atomic_write(sys.argv[1] + "/a.json", "w") as f:
    f.write("{}")
with atomic_path(sys.argv[1] + "/b.safetensors") as tmp:
    tmp.write_bytes(b"x")
print(" ".join(oct(stat.S_IMODE(os.stat(sys.argv[1] + n).st_mode)) for n in ("/a.json", "/b.safetensors")))
"""


@pytest.mark.parametrize("umask, mode", [("022", "0o644"), ("027", "0o640"), ("002", "0o664")])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), umask], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.split() == [mode, mode]


def test_in_process_writes_are_not_private(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    with atomic_write(tmp_path / "r.md", "w") as f:
        f.write("report")
    with atomic_path(tmp_path / "m.bin") as tmp:
        tmp.write_bytes(b"m")
    for name in ("r.md", "m.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
