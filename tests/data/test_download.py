"""``mbvc data get`` against a loopback HTTP server serving tiny files in each dataset's real format.

:class:`Server` (``http.server`` on 127.0.0.1, port 0, in a thread) counts the body bytes it
sends and the ranges asked for, and can cut a response midway, ignore ranges or answer 404.
Moving MNIST is a ``(20, 3, 64, 64)`` uint8 ``.npy`` checked against a spec of that shape (the
published one is 819 MB); KTH is six zips of tiny lossless ``.avi`` files; BAIR a tar of
TFRecords written by mbvc's own writer. Nothing reaches outside the machine.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import tarfile
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from mbvc.data.example_proto import encode_example
from mbvc.data.get import SOURCES, dataset_status, get_dataset, url_variable
from mbvc.data.get.manifest import MANIFEST
from mbvc.data.tfrecord_io import masked_crc
from mbvc.errors import ConfigError, DataError, OutputError

MNIST = replace(SOURCES["moving_mnist"], npy_shape=(20, 3, 64, 64))  # the published shape is (20, 10000, 64, 64)


# ---------------------------------------------------------------- the server
class Server:
    """Files by URL path, served with HTTP range support; ``served`` counts body bytes sent."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.served = 0
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: int | None = None  # cut the next response after this many body bytes
        self.ignore_range = False
        self.fail_next = 0  # answer this many requests 503 (busy)
        self.fail_after_cut = 0  # ... set to this when a response is cut
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{prefix}"

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        rng = h.headers.get("Range")
        self.requests.append((h.path, rng))
        data = self.files.get(h.path)
        if self.fail_next:
            self.fail_next -= 1
            h.send_error(503)
            return
        if data is None:
            h.send_error(404)
            return
        start = 0
        if rng and not self.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        h.send_header("Content-Length", str(len(data) - start))
        h.end_headers()
        body = data[start:]
        if self.cut_after is not None:
            body, self.cut_after = body[: self.cut_after], None
            self.fail_next = self.fail_after_cut
            h.close_connection = True
        h.wfile.write(body)
        h.wfile.flush()
        self.served += len(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch, tmp_path):
    """A running server; each dataset's address points at it, and the data root at ``tmp_path/root``."""
    srv = Server()
    for name in SOURCES:
        monkeypatch.setenv(url_variable(name), srv.url(name))
    monkeypatch.setenv("MBVC_DATA", str(tmp_path / "root"))
    yield srv
    srv.close()


def closed_port_url() -> str:
    """An address on the loopback where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing"


# ---------------------------------------------------------------- synthetic files in the real formats
def npy_bytes(shape=(20, 3, 64, 64)) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    return buf.getvalue()


def bair_record(k: int, steps: int = 2) -> bytes:
    rng = np.random.default_rng(k)
    feats = {}
    for t in range(steps):
        feats[f"{t}/image_aux1/encoded"] = rng.integers(0, 256, 64 * 64 * 3, dtype=np.uint8).tobytes()
        feats[f"{t}/image_main/encoded"] = rng.integers(0, 256, 64 * 64 * 3, dtype=np.uint8).tobytes()
        feats[f"{t}/action"] = rng.standard_normal(4).astype(np.float32)
        feats[f"{t}/endeffector_pos"] = rng.standard_normal(3).astype(np.float32)
    return encode_example(feats)


def tfrecords(payloads: list[bytes]) -> bytes:
    out = b""
    for data in payloads:
        length = len(data).to_bytes(8, "little")
        out += length + masked_crc(length).to_bytes(4, "little") + data + masked_crc(data).to_bytes(4, "little")
    return out


BAIR_FILES = {"softmotion30_44k/train/traj_0_to_1.tfrecords": [0, 1],
              "softmotion30_44k/train/traj_2_to_3.tfrecords": [2, 3],
              "softmotion30_44k/test/traj_0_to_1.tfrecords": [4, 5]}


def bair_tar(files: dict[str, bytes] | None = None) -> bytes:
    files = files or {name: tfrecords([bair_record(k) for k in ks]) for name, ks in BAIR_FILES.items()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("softmotion30_44k", "softmotion30_44k/train", "softmotion30_44k/test"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


#: (zip, person, frames): persons 01-16 train, 17-25 test; frame k is the grey value 8 * k.
KTH_VIDEOS = [("walking", 1, 12), ("walking", 17, 12), ("jogging", 2, 10), ("running", 18, 10),
              ("boxing", 3, 10), ("handwaving", 19, 10), ("handclapping", 4, 10)]


@pytest.fixture(scope="module")
def kth_zips(tmp_path_factory) -> dict[str, bytes]:
    """The six action zips, each with tiny lossless .avi videos named as KTH names them (stored, not deflated)."""
    imageio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    tmp = tmp_path_factory.mktemp("avi")
    zips = {}
    for action in ("walking", "jogging", "running", "boxing", "handwaving", "handclapping"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for act, person, n in KTH_VIDEOS:
                if act != action:
                    continue
                path = tmp / f"person{person:02d}_{act}_d1_uncomp.avi"
                writer = imageio.get_writer(path, format="FFMPEG", fps=25, codec="ffv1", macro_block_size=1,
                                            pixelformat="bgr0")
                for k in range(n):
                    writer.append_data(np.full((24, 32, 3), 8 * k, np.uint8))
                writer.close()
                z.write(path, path.name)
        zips[f"{action}.zip"] = buf.getvalue()
    return zips


def serve(server: Server, name: str, files: dict[str, bytes]) -> None:
    for fname, data in files.items():
        server.files[f"/{name}/{fname}"] = data


def manifest_of(folder: Path) -> dict | None:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1:]


# ---------------------------------------------------------------- full downloads
def test_moving_mnist_full_download_records_the_sha256_and_a_rerun_needs_no_network(server, tmp_path):
    data = npy_bytes()
    serve(server, "moving_mnist", {"mnist_test_seq.npy": data})
    report = get_dataset(MNIST, retry_wait=0)
    folder = tmp_path / "root" / "moving_mnist"
    assert report.folder == folder and report.fetched == len(data) and server.served == len(data)
    assert (folder / "mnist_test_seq.npy").read_bytes() == data and not list(folder.glob("*.partial"))
    manifest = manifest_of(folder)
    assert manifest["complete"] and manifest["files"]["mnist_test_seq.npy"] == {"size": len(data), "sha256": sha(data)}
    assert manifest["sources"]["mnist_test_seq.npy"]["from"] == server.url("moving_mnist/mnist_test_seq.npy")
    assert dataset_status(folder)[0] == "present"
    assert set(report.seconds) == {"download", "check and unpack"} and report.disk >= len(data)

    n = len(server.requests)
    again = get_dataset(MNIST)
    assert again.already and again.fetched == 0 and len(server.requests) == n  # no network access at all


def test_kth_full_download_unpacks_every_video_and_decodes_the_cache(server, tmp_path, kth_zips):
    from mbvc.data import DataConfig, build_dataset

    serve(server, "kth", kth_zips)
    report = get_dataset("kth", image_sizes=(16,), retry_wait=0)
    folder = tmp_path / "root" / "kth"
    manifest = manifest_of(folder)
    assert manifest["complete"] and server.served == sum(map(len, kth_zips.values()))
    assert sorted(manifest["sources"]) == sorted(kth_zips)
    assert all(manifest["sources"][z]["sha256"] == sha(d) for z, d in kth_zips.items())
    assert len(manifest["files"]) == len(KTH_VIDEOS)
    assert (folder / "walking" / "person17_walking_d1_uncomp.avi").is_file()
    assert not list(folder.glob("*.zip*"))  # downloaded archives are removed once unpacked
    assert manifest["caches"] == ["mbvc_cache/kth_train_16", "mbvc_cache/kth_test_16"]
    assert report.built_caches == manifest["caches"] and "decode" in report.seconds
    n = len(server.requests)
    assert get_dataset("kth").already and get_dataset("kth").built_caches == []  # present: nothing decoded again
    more = get_dataset("kth", image_sizes=(16, 8))  # another cache side: decoded without any download
    assert more.already and more.built_caches == ["mbvc_cache/kth_train_8", "mbvc_cache/kth_test_8"]
    assert len(server.requests) == n

    # a config without data.root reads the prepared folder and its cache
    cfg = DataConfig(name="kth", image_size=16, seq_len=4, eval_seq_len=4)
    assert cfg.root == str(folder)
    assert build_dataset(cfg, "test")[0]["frames"].shape == (4, 1, 16, 16)


def test_bair_full_download_checks_every_tfrecord_and_the_reader_finds_it(server, tmp_path):
    from mbvc.data import DataConfig, build_dataset

    tar = bair_tar()
    serve(server, "bair", {"bair_robot_pushing_dataset_v0.tar": tar})
    get_dataset("bair", keep_archives=True, retry_wait=0)
    folder = tmp_path / "root" / "bair"
    manifest = manifest_of(folder)
    assert manifest["complete"] and sorted(manifest["files"]) == sorted(BAIR_FILES)
    assert manifest["sources"]["bair_robot_pushing_dataset_v0.tar"]["sha256"] == sha(tar)
    assert (folder / "bair_robot_pushing_dataset_v0.tar").read_bytes() == tar  # kept on request
    cfg = DataConfig(name="bair", seq_len=2)
    assert cfg.root == str(folder)
    assert len(build_dataset(cfg, "train")) == 4  # 4 trajectories of 2 steps, one window each


# ---------------------------------------------------------------- interrupted downloads
def test_a_cut_connection_is_resumed_and_every_byte_is_fetched_once(server, tmp_path):
    data = npy_bytes()
    serve(server, "moving_mnist", {"mnist_test_seq.npy": data})
    server.cut_after = len(data) // 3
    report = get_dataset(MNIST, retry_wait=0)
    assert server.served == len(data) and report.fetched == len(data)
    assert server.requests[-1][1] == f"bytes={len(data) // 3}-"
    assert manifest_of(tmp_path / "root" / "moving_mnist")["files"]["mnist_test_seq.npy"]["sha256"] == sha(data)


def test_an_interrupted_run_keeps_its_bytes_and_the_next_run_resumes(server, tmp_path):
    tar = bair_tar()
    serve(server, "bair", {"bair_robot_pushing_dataset_v0.tar": tar})
    server.cut_after, server.fail_after_cut = 5000, 1  # cut, then busy: no progress left in this run's budget
    with pytest.raises(DataError, match="connection broke 1 times without progress.*HTTP 503.*run the same "
                                        "command again to resume") as e:
        get_dataset("bair", retries=0, retry_wait=0)
    assert "\n" not in str(e.value)
    folder = tmp_path / "root" / "bair"
    assert (folder / "bair_robot_pushing_dataset_v0.tar.partial").stat().st_size == 5000
    assert dataset_status(folder)[0] == "incomplete"
    get_dataset("bair", retries=0)
    assert server.served == len(tar) and server.requests[-1][1] == "bytes=5000-"
    assert manifest_of(folder)["complete"]


def test_a_server_that_ignores_ranges_is_read_from_the_start_not_appended(server, tmp_path):
    data = npy_bytes()
    serve(server, "moving_mnist", {"mnist_test_seq.npy": data})
    folder = tmp_path / "root" / "moving_mnist"
    folder.mkdir(parents=True)
    (folder / "mnist_test_seq.npy.partial").write_bytes(b"\0" * 4096)  # stale bytes that must not be kept
    server.ignore_range = True
    report = get_dataset(MNIST, retry_wait=0)
    assert server.requests[0][1] == "bytes=4096-" and report.fetched == len(data)
    assert (folder / "mnist_test_seq.npy").read_bytes() == data


# ---------------------------------------------------------------- wrong content
def _bad_zip_crc(kth_zips: dict[str, bytes]) -> dict[str, bytes]:
    data = kth_zips["boxing.zip"]
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    return {**kth_zips, "boxing.zip": flip(data, start + info.compress_size // 2)}


def _bad_tfrecord_crc() -> dict[str, bytes]:
    files = {name: tfrecords([bair_record(k) for k in ks]) for name, ks in BAIR_FILES.items()}
    name = "softmotion30_44k/train/traj_2_to_3.tfrecords"
    files[name] = flip(files[name], 100)  # inside the first record's payload
    return {"bair_robot_pushing_dataset_v0.tar": bair_tar(files)}


def _tar_cut_between_members() -> bytes:
    tar = bair_tar()
    last = tarfile.open(fileobj=io.BytesIO(tar)).getmembers()[-1]
    return tar[: last.offset_data + -(-last.size // 512) * 512]


@pytest.mark.parametrize("case", ["zip member CRC", "tfrecord CRC", "truncated tar", "tar cut between members",
                                  "npy shape", "truncated npy"])
def test_wrong_content_is_refused_with_one_line_and_no_complete_manifest(server, tmp_path, case, request):
    if case == "zip member CRC":
        name, files, expect = "kth", _bad_zip_crc(request.getfixturevalue("kth_zips")), \
            r"boxing\.zip from .*: member person03_boxing_d1_uncomp\.avi: Bad CRC-32"
    elif case == "tfrecord CRC":
        name, files, expect = "bair", _bad_tfrecord_crc(), r"member softmotion30_44k/train/traj_2_to_3\.tfrecords:.*" \
                                                           r"record 0 .*CRC mismatch"
    elif case == "truncated tar":
        tar = bair_tar()
        name, files, expect = "bair", {"bair_robot_pushing_dataset_v0.tar": tar[: len(tar) // 2]}, "truncated"
    elif case == "tar cut between members":
        name, files, expect = "bair", {"bair_robot_pushing_dataset_v0.tar": _tar_cut_between_members()}, \
            "truncated or damaged: no end-of-archive marker"
    elif case == "truncated npy":
        name, files, expect = MNIST, {"mnist_test_seq.npy": npy_bytes()[:-100]}, r"the header promises .*\(truncated\)"
    else:
        name, files, expect = MNIST, {"mnist_test_seq.npy": npy_bytes((20, 2, 64, 64))}, \
            r"expected uint8 \(20, 3, 64, 64\) as published, got uint8 \(20, 2, 64, 64\)"
    dataset = name if isinstance(name, str) else name.name
    serve(server, dataset, files)
    with pytest.raises(DataError, match=expect) as e:
        get_dataset(name, image_sizes=(16,), retry_wait=0)
    assert "\n" not in str(e.value) and "the download was removed: run again" in str(e.value)
    folder = tmp_path / "root" / dataset
    manifest = manifest_of(folder)
    assert manifest is None or not manifest["complete"]
    assert dataset_status(folder)[0] != "present" and not list(folder.glob("*.partial"))


# ---------------------------------------------------------------- errors that name what to do
def test_a_404_names_the_address(server, tmp_path):
    with pytest.raises(DataError, match=re.escape(server.url("moving_mnist/mnist_test_seq.npy")) + ": HTTP 404"):
        get_dataset(MNIST)
    assert not (tmp_path / "root" / "moving_mnist").exists()  # a start that stored nothing leaves nothing


def test_offline_says_in_one_line_where_to_put_the_files(server, tmp_path, monkeypatch):
    monkeypatch.setenv(url_variable("kth"), closed_port_url())
    with pytest.raises(DataError) as e:
        get_dataset("kth")
    line = str(e.value)
    folder = tmp_path / "root" / "kth"
    assert "\n" not in line and "cannot reach" in line and "walking.zip, jogging.zip" in line
    assert f"put them in {folder}" in line and "--from FILE_OR_DIR" in line


def test_from_a_local_file_verifies_and_prepares_without_network(server, tmp_path, monkeypatch):
    monkeypatch.setenv(url_variable("bair"), closed_port_url())
    monkeypatch.setenv(url_variable("moving_mnist"), closed_port_url())
    tar, npy = tmp_path / "elsewhere.tar", tmp_path / "mnist copy.npy"
    tar.write_bytes(bair_tar())
    npy.write_bytes(npy_bytes())
    get_dataset("bair", source_path=tar)
    get_dataset(MNIST, source_path=npy)
    assert tar.is_file() and npy.is_file()  # a user's files are never moved or removed
    bair, mnist = manifest_of(tmp_path / "root" / "bair"), manifest_of(tmp_path / "root" / "moving_mnist")
    assert bair["complete"] and bair["sources"]["bair_robot_pushing_dataset_v0.tar"]["from"] == str(tar.resolve())
    assert mnist["files"]["mnist_test_seq.npy"]["sha256"] == sha(npy.read_bytes())
    assert server.requests == []
    with pytest.raises(ConfigError, match="--from .*nowhere.npy does not exist"):
        get_dataset(MNIST, source_path=tmp_path / "nowhere.npy")
    with pytest.raises(DataError, match=r"mnist copy\.npy: expected uint8 \(20, 3, 64, 65\)"):  # named, never removed
        get_dataset(replace(MNIST, name="mm2", npy_shape=(20, 3, 64, 65)), source_path=npy)
    assert npy.is_file()


def test_a_file_put_in_the_folder_by_hand_is_verified_in_place(server, tmp_path):
    folder = tmp_path / "root" / "bair"
    folder.mkdir(parents=True)
    (folder / "bair_robot_pushing_dataset_v0.tar").write_bytes(bair_tar())
    get_dataset("bair")
    assert server.requests == [] and manifest_of(folder)["complete"]
    assert (folder / "bair_robot_pushing_dataset_v0.tar").is_file()


def test_a_read_only_root_is_one_line_and_keeps_what_is_there(server, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputError, match="cannot write --root .*a_file is a file"):
        get_dataset(MNIST, root=tmp_path / "a_file" / "data")
    ro = tmp_path / "ro"
    (ro / "moving_mnist").mkdir(parents=True)
    (ro / "moving_mnist" / "mnist_test_seq.npy.partial").write_bytes(b"kept")
    if os.geteuid() == 0:  # root ignores chmod: the file system's answer is stood in for
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != ro / "moving_mnist" and real_access(p, mode))
    else:
        (ro / "moving_mnist").chmod(0o555)
    try:
        with pytest.raises(OutputError, match=f"cannot write --root {ro / 'moving_mnist'}: .* is read-only"):
            get_dataset(MNIST, root=ro)
    finally:
        (ro / "moving_mnist").chmod(0o755)
    assert server.requests == [] and (ro / "moving_mnist" / "mnist_test_seq.npy.partial").read_bytes() == b"kept"


def test_a_missing_file_is_fetched_again_and_the_config_error_names_the_command(server, tmp_path, monkeypatch):
    from mbvc.data import DataConfig, build_dataset

    empty = DataConfig(name="bair")  # no data yet: the config loads (a preset needs no data to be read)...
    assert empty.root == ""
    with pytest.raises(ConfigError, match=r"data.root is required for bair .*`mbvc data get bair` to download it "
                                          rf"into {re.escape(str(tmp_path / 'root' / 'bair'))}"):
        build_dataset(empty, "train")  # ...building the dataset names the setting and the command
    tar = bair_tar()
    serve(server, "bair", {"bair_robot_pushing_dataset_v0.tar": tar})
    get_dataset("bair")
    folder = tmp_path / "root" / "bair"
    (folder / "softmotion30_44k/test/traj_0_to_1.tfrecords").unlink()
    assert dataset_status(folder)[0] == "damaged" and DataConfig(name="bair").root == ""
    get_dataset("bair")
    assert server.served == 2 * len(tar) and dataset_status(folder)[0] == "present"


def test_presets_and_mnist_seq_read_the_data_root_without_settings(server, tmp_path, kth_zips):
    from mbvc.config import load_run_config
    from mbvc.data import DataConfig, build_dataset

    serve(server, "moving_mnist", {"mnist_test_seq.npy": npy_bytes((20, 3, 64, 64))})
    get_dataset(MNIST)
    test = build_dataset(DataConfig(name="mnist_seq", seq_len=10), "test")
    assert len(test) == 3 and test[0]["frames"].shape == (10, 1, 64, 64)
    with pytest.raises(ConfigError, match="data.train_paths is empty"):
        build_dataset(DataConfig(name="mnist_seq", seq_len=10), "train")

    serve(server, "kth", kth_zips)
    get_dataset("kth", image_sizes=(16,))
    cfg = load_run_config("kth-predrnn-small", ["data.root="])  # a preset whose root is empty
    assert cfg.data.root == str(tmp_path / "root" / "kth")  # what the run's config.yaml records
    os.remove(tmp_path / "root" / "kth" / MANIFEST)
    cfg = load_run_config("kth-predrnn-small", ["data.root="])
    with pytest.raises(ConfigError, match="data.root is required for kth .*`mbvc data get kth`"):
        build_dataset(cfg.data, "train")


def test_a_refused_lock_leaves_the_holders_lock_and_folder_in_place(tmp_path):
    from mbvc.data.get.manifest import folder_lock

    folder = tmp_path / "bair"
    folder.mkdir()
    with folder_lock(folder):  # the holder has stored nothing yet: only its .lock is there
        with pytest.raises(DataError, match="being filled by another mbvc data get"):
            with folder_lock(folder):
                pass
        assert (folder / ".lock").is_file()
    assert not folder.exists()  # the holder, which stored nothing, tidies up after itself
