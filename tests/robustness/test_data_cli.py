"""``mbvc data get`` / ``mbvc data list`` as a user runs them: a subprocess against a loopback server.

The server and the synthetic files come from ``tests/data/test_download.py``; the addresses are
pointed at it with ``MBVC_DATA_URL_<NAME>``, the data root with ``MBVC_DATA``. Every failure is
one ``mbvc data: error:`` line (exit code 2) that names the file or address.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mbvc.data.get import url_variable
from tests.data.test_download import Server, bair_tar, closed_port_url, manifest_of, npy_bytes, serve

TAR = "bair_robot_pushing_dataset_v0.tar"


def mbvc_data(*argv: object, env: dict[str, str], fsize: int | None = None) -> subprocess.CompletedProcess:
    """``python -m mbvc data ARGV`` (optionally under a file-size limit, standing in for a full disk)."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "mbvc", "data", *map(str, argv)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, preexec_fn=limit if fsize else None)


def one_line_error(proc: subprocess.CompletedProcess, *named: str) -> str:
    """Exit code 2 and, last on stderr, one ``mbvc data: error:`` line naming each of ``named``."""
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]  # log lines (HH:MM:SS LEVEL ...) may come first
    ours = [line for line in lines if line.startswith("mbvc ")]
    assert len(ours) == 1 and ours[0].startswith("mbvc data: error: ") and lines[-1] == ours[0], err[-3000:]
    for word in named:
        assert word in ours[0], (word, ours[0])
    return ours[0]


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def urls(server: Server, root: Path) -> dict[str, str]:
    return {"MBVC_DATA": str(root), **{url_variable(n): server.url(n) for n in ("moving_mnist", "kth", "bair")}}


def test_get_then_list_then_get_again_without_network(server, tmp_path):
    serve(server, "bair", {TAR: bair_tar()})
    env = urls(server, tmp_path / "root")
    got = mbvc_data("get", "bair", env=env)
    assert got.returncode == 0, got.stderr[-2000:]
    folder = tmp_path / "root" / "bair"
    assert "bair: downloaded" in got.stdout and f"verified and prepared in {folder}" in got.stdout
    assert "on disk" in got.stdout and "check and unpack" in got.stdout
    listed = mbvc_data("list", env=env)
    assert listed.returncode == 0 and f"bair: present in {folder}" in listed.stdout
    assert "moving_mnist: absent" in listed.stdout and server.url("bair") in listed.stdout
    n = len(server.requests)
    again = mbvc_data("get", "bair", env=env)
    assert again.returncode == 0 and "present" in again.stdout and "nothing to do" in again.stdout
    assert len(server.requests) == n


def test_wrong_shape_404_offline_and_unknown_name_are_one_line(server, tmp_path):
    env = urls(server, tmp_path / "root")
    serve(server, "moving_mnist", {"mnist_test_seq.npy": npy_bytes((20, 2, 64, 64))})
    one_line_error(mbvc_data("get", "moving_mnist", env=env), "mnist_test_seq.npy",
                   "expected uint8 (20, 10000, 64, 64) as published, got uint8 (20, 2, 64, 64)")
    assert manifest_of(tmp_path / "root" / "moving_mnist") is None
    one_line_error(mbvc_data("get", "kth", env=env), server.url("kth/walking.zip"), "HTTP 404")
    offline = {**env, url_variable("bair"): closed_port_url()}
    one_line_error(mbvc_data("get", "bair", env=offline), "cannot reach", str(tmp_path / "root" / "bair"), "--from")
    one_line_error(mbvc_data("get", "movingmnist", env=env), "unknown dataset", "Did you mean 'moving_mnist'")
    one_line_error(mbvc_data("get", "bair", "--from", tmp_path / "missing.tar", env=env), "missing.tar",
                   "does not exist")


def test_a_full_disk_is_one_line_keeps_the_bytes_and_the_next_run_resumes(server, tmp_path):
    # Root ignores chmod, so a full disk is stood in for by a file-size limit (EFBIG past 64 KiB).
    tar = bair_tar()
    serve(server, "bair", {TAR: tar})
    env = urls(server, tmp_path / "root")
    partial = tmp_path / "root" / "bair" / f"{TAR}.partial"
    one_line_error(mbvc_data("get", "bair", "--no-progress", env=env, fsize=1 << 16), "cannot write", str(partial),
                   "stay in", "resumes")
    assert partial.stat().st_size == 1 << 16
    resumed = mbvc_data("get", "bair", env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert server.requests[-1][1] == f"bytes={1 << 16}-" and manifest_of(tmp_path / "root" / "bair")["complete"]


def test_a_root_that_cannot_be_written_is_one_line(server, tmp_path):
    serve(server, "moving_mnist", {"mnist_test_seq.npy": npy_bytes()})
    env = urls(server, tmp_path / "root")
    (tmp_path / "a_file").write_text("keep me")
    one_line_error(mbvc_data("get", "moving_mnist", "--root", tmp_path / "a_file" / "data", env=env),
                   "cannot write --root", "a_file is a file")
    assert (tmp_path / "a_file").read_text() == "keep me" and server.requests == []
    if os.geteuid() != 0:  # root ignores chmod
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            one_line_error(mbvc_data("get", "moving_mnist", "--root", ro, env=env), "read-only", str(ro))
        finally:
            ro.chmod(0o755)
