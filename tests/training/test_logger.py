"""The metric logger: record / record_mean / dump to pluggable writers."""
from __future__ import annotations

import math
import struct
import subprocess
import sys

import numpy as np

from mbvc.training.logger import JSONLinesWriter, Logger, TensorBoardWriter, read_jsonl


class Collect:
    def __init__(self):
        self.rows = []

    def write(self, step, scalars, images):
        self.rows.append((step, dict(scalars), sorted(images)))

    def close(self):
        self.rows.append("closed")


def test_record_and_mean_are_dumped_then_cleared():
    sink = Collect()
    log = Logger([sink])
    log.record("train/lr", 0.1)
    log.record("train/lr", 0.2)
    for v in (1.0, 2.0, 6.0):
        log.record_mean("train/loss", v)
    log.record_image("eval/samples", np.zeros((4, 4, 3), np.uint8))
    assert log.dump(7) == {"train/lr": 0.2, "train/loss": 3.0}
    assert log.dump(8) == {}  # nothing new: writers are not called
    log.close()
    assert sink.rows == [(7, {"train/lr": 0.2, "train/loss": 3.0}, ["eval/samples"]), "closed"]


def test_jsonl_keeps_the_last_row_of_a_redone_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    w = JSONLinesWriter(path)
    w.write(1, {"train/loss": 2.0}, {})
    w.write(2, {"train/loss": math.nan}, {})
    w.close()
    w = JSONLinesWriter(path)  # a resumed run appends and redoes step 2
    w.write(2, {"train/loss": 1.5}, {})
    w.close()
    assert read_jsonl(path) == [{"step": 1, "train/loss": 2.0}, {"step": 2, "train/loss": 1.5}]


def _events(folder):
    """Events of TFRecord event files, read without TensorFlow (length, crc, data, crc)."""
    from tensorboard.compat.proto.event_pb2 import Event

    out = []
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        while data:
            n = struct.unpack("<Q", data[:8])[0]
            out.append(Event.FromString(data[12:12 + n]))
            data = data[12 + n + 4:]
    return out


def test_tensorboard_writer_writes_events(tmp_path):
    w = TensorBoardWriter(tmp_path / "tb", purge_step=2)
    w.write(3, {"train/loss": 0.5}, {"eval/samples": np.zeros((8, 6, 3), np.uint8)})
    w.close()
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())
    events = _events(tmp_path / "tb")
    assert any(e.step == 2 and e.session_log.status == e.session_log.START for e in events)  # the purge marker
    values = {v.tag: v for e in events if e.step == 3 for v in e.summary.value}
    assert values["train/loss"].simple_value == 0.5
    image = values["eval/samples"].image
    assert (image.height, image.width) == (8, 6) and image.encoded_image_string.startswith(b"\x89PNG")


def test_tensorboard_logging_never_imports_tensorflow(tmp_path):
    # tensorflow-cpu is installed in the test environment: torch.utils.tensorboard would import it.
    code = (
        "import sys, numpy as np\n"
        "from mbvc.training.logger import configure_logger\n"
        f"log = configure_logger({str(tmp_path)!r}, stdout=False, tensorboard=True)\n"
        "log.record('train/loss', 1.0); log.record_image('s', np.zeros((4, 4, 3), np.uint8)); log.dump(1); log.close()\n"
        "bad = [m for m in ('tensorflow', 'torch.utils.tensorboard') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_learning_curves_of_a_run(tmp_path):
    from mbvc.training.curves import write_curves

    w = JSONLinesWriter(tmp_path / "metrics.jsonl")
    for step in (10, 20):
        w.write(step, {"train/loss": 1.0 / step, "train/mse": 0.5 / step, "time/elapsed_s": 3.0 * step}, {})
        w.write(step, {f"{p}/{m}": float(step + i) for i, p in enumerate(("eval", "eval_copy_last", "eval_mean_frame"))
                       for m in ("mse", "mae", "psnr", "ssim")}, {})
    w.close()
    paths = write_curves(tmp_path, tmp_path / "curves", extra={"command": "mbvc train ..."})
    data = __import__("json").loads(paths["json"].read_text())
    assert data["command"] == "mbvc train ..." and [v["iteration"] for v in data["validations"]] == [10, 20]
    assert data["validations"][1]["elapsed_s"] == 60.0 and data["validations"][1]["copy_last"]["mse"] == 21.0
    assert len(data["train"]) == 2 and "| 20 | 1.0 | 20.0 | 21.0 | 22.0 |" in paths["md"].read_text()
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
