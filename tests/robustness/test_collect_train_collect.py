"""``mbvc collect`` on bad arguments and on a file system that refuses writes, run as a user runs it.

Every case runs ``python -m mbvc collect`` in a subprocess and checks the exit code (2), that
stderr ends in one ``mbvc collect: error: ...`` line without a traceback, and what is on disk
afterwards: nothing for a refused argument, a resumable folder after a failed write.

Real write failures without root tricks: ``RLIMIT_FSIZE`` (with SIGXFSZ ignored a write past the
limit fails with EFBIG); where user and mount namespaces are available (``unshare -r -m``), a
64 KiB tmpfs (ENOSPC) and a read-only bind mount (EROFS), both private to the subprocess.
"""
from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mbvc.data.store import SequenceStore

ENV = {**os.environ, "MUJOCO_GL": "egl", "PYTHONDONTWRITEBYTECODE": "1"}
#: 16x16 frames, 5 steps (6 frames, 4608 bytes of frames per episode): about a second per collection.
TINY = ["--image-size", "16", "--episode-length", "5", "--no-progress"]
EPISODE_FRAME_BYTES = 6 * 16 * 16 * 3


def _mbvc(*args: object, cwd: Path, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mbvc", *map(str, args)], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300, preexec_fn=preexec_fn)


def _one_line_error(out: subprocess.CompletedProcess | tuple[int, str], command: str = "collect") -> str:
    code, err = (out.returncode, out.stderr) if isinstance(out, subprocess.CompletedProcess) else out
    assert code == 2, (code, err[-3000:])
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"mbvc {command}: ")]
    assert len(lines) == 1 and "error:" in lines[0], err
    assert err.rstrip().splitlines()[-1] == lines[0], err  # the last thing said
    return lines[0]


def _frames(root: Path) -> list[np.ndarray]:
    store = SequenceStore(root)
    return [np.array(store.read(i, "frames")) for i in range(len(store))]


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("args, named", [
    (["--seed", "-1"], ["--seed", "-1", ">= 0"]),
    (["--episodes", "-1"], ["--episodes", "-1"]),
    (["--noise", "-0.5"], ["--noise", "-0.5"]),
    (["--random-prob", "2"], ["--random-prob", "[0, 1]"]),
    (["--env-kwargs", '{"image_size": 8}'], ["--env-kwargs", "image_size", "--image-size"]),
    (["--env-kwargs", '{"num_blocks": 2}'], ["num_blocks", "mbvc/PushMulti-v0"]),
])
def test_bad_arguments_are_refused_before_the_folder_is_written(tmp_path, args, named):
    out = tmp_path / "out"
    line = _one_line_error(_mbvc("collect", out, "-n", "1", *TINY, *args, cwd=tmp_path))
    for word in named:
        assert word in line, line
    assert not out.exists()  # no manifest locked to the bad value


def test_an_output_under_a_file_is_one_line(tmp_path, a_file):
    line = _one_line_error(_mbvc("collect", a_file / "out", "-n", "1", *TINY, cwd=tmp_path))
    assert "a_file" in line
    line = _one_line_error(_mbvc("collect", a_file, "-n", "1", *TINY, cwd=tmp_path))
    assert "a_file" in line and "is a file" in line
    assert a_file.read_text() == "not a folder"


def test_a_policy_that_fails_leaves_no_folder_behind(tmp_path):
    """A wrong module:factory, or a policy whose actions do not fit the env: one line, no manifest locked to it."""
    (tmp_path / "my_policies.py").write_text("import numpy as np\n\n\ndef wrong_size(env):\n"
                                              "    return lambda obs: np.zeros(5)\n")
    out = tmp_path / "out"
    for policy, named in (("numpy:zeros", "numpy:zeros"), ("my_policies:wrong_size", "(5,)")):
        line = _one_line_error(_mbvc("collect", out, "-n", "2", *TINY, "--policy", policy, cwd=tmp_path))
        assert named in line, line
        assert not out.exists()


def _file_size_limit(limit: int):
    def limit_writes() -> None:  # in the child, before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_writes


def test_a_write_past_the_file_size_limit_is_one_line_and_the_folder_resumes(tmp_path):
    out = tmp_path / "out"
    # Shards of 3 episodes: the third episode's frames cross the 10000-byte limit of frames.bin.
    failed = _mbvc("collect", out, "-n", "6", "--shard-size", "3", *TINY, cwd=tmp_path,
                   preexec_fn=_file_size_limit(2 * EPISODE_FRAME_BYTES + 800))
    line = _one_line_error(failed)
    assert "frames.bin" in line and "File too large" in line and "run again" in line, line
    # The failed episode was cut off again and the two complete ones were kept: every listed
    # episode reads back (SequenceStore checks each file's size).
    kept = _frames(out)
    assert len(kept) == 2

    resumed = _mbvc("collect", out, "-n", "6", "--shard-size", "3", *TINY, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "wrote 4 episodes (6 in" in resumed.stdout
    whole = tmp_path / "whole"
    assert _mbvc("collect", whole, "-n", "6", "--shard-size", "3", *TINY, cwd=tmp_path).returncode == 0
    for a, b in zip(_frames(out), _frames(whole), strict=True):  # what an uninterrupted run writes
        np.testing.assert_array_equal(a, b)


def _namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-r", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(not _namespaces(), reason="needs `unshare -r -m` (user and mount namespaces) "
                                                                "to mount a private tmpfs / read-only bind mount")


def _in_namespace(script: str, cwd: Path) -> None:
    """Run ``script`` with sh as root of a private user + mount namespace (mounts vanish with it)."""
    done = subprocess.run(["unshare", "-r", "-m", "sh", "-c", script], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _command(*args: object) -> str:
    return " ".join(f"'{a}'" for a in (sys.executable, "-m", "mbvc", *args))


@needs_namespaces
def test_a_full_disk_is_one_line_and_the_folder_resumes(tmp_path):
    """A 64 KiB tmpfs fills up during the third shard: ENOSPC, the finished shards stay readable."""
    (tmp_path / "disk").mkdir()
    collect = _command("collect", "disk/out", "-n", "8", "--shard-size", "2", *TINY)
    _in_namespace("mount -t tmpfs -o size=64k tmpfs disk && "
                  f"{{ {collect} > stdout 2> stderr; echo $? > rc; }}; cp -a disk/out copy", tmp_path)
    line = _one_line_error((int((tmp_path / "rc").read_text()), (tmp_path / "stderr").read_text()))
    assert "disk/out/shard_" in line and "No space left on device" in line, line
    kept = _frames(tmp_path / "copy")  # the folder as the full disk left it
    assert 0 < len(kept) < 8

    resumed = _mbvc("collect", "copy", "-n", "8", "--shard-size", "2", *TINY, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"wrote {8 - len(kept)} episodes (8 in copy)" in resumed.stdout
    assert len(_frames(tmp_path / "copy")) == 8


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@needs_namespaces
def test_a_read_only_folder_is_one_line_and_left_as_it_was(tmp_path):
    out = tmp_path / "out"
    assert _mbvc("collect", out, "-n", "2", *TINY, cwd=tmp_path).returncode == 0
    before = _digest(out)
    more = _command("collect", "out", "-n", "4", *TINY)
    _in_namespace("mount --bind out out && mount -o remount,bind,ro out && "
                  f"{{ {more} > stdout 2> stderr; echo $? > rc; }}", tmp_path)
    line = _one_line_error((int((tmp_path / "rc").read_text()), (tmp_path / "stderr").read_text()))
    assert "out" in line and "read-only" in line.lower(), line
    assert _digest(out) == before

    resumed = _mbvc("collect", out, "-n", "4", *TINY, cwd=tmp_path)  # writable again: it resumes
    assert resumed.returncode == 0 and "wrote 2 episodes (4 in" in resumed.stdout, resumed.stderr[-3000:]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits (chmod 0o555 stops nothing); "
                                              "test_a_read_only_folder_is_one_line_and_left_as_it_was covers it "
                                              "with a read-only bind mount")
def test_a_folder_without_write_permission_is_one_line(tmp_path):
    out = tmp_path / "out"
    assert _mbvc("collect", out, "-n", "1", *TINY, cwd=tmp_path).returncode == 0
    before = _digest(out)
    out.chmod(0o555)
    try:
        line = _one_line_error(_mbvc("collect", out, "-n", "2", *TINY, cwd=tmp_path))
    finally:
        out.chmod(0o755)
    assert "out" in line
    assert _digest(out) == before
