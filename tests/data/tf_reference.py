"""TensorFlow as the reference writer and reader of BAIR TFRecords, in a process of its own.

TensorFlow loaded into a process that already holds torch and Mesa's OpenGL (the env and agent
tests render with MuJoCo) crashes on import, so the tests run this file as a script:

    python tf_reference.py '[{"op": "write", "path": ..., "seeds": [0, 1], "drop_key": null},
                             {"op": "read", "path": ..., "step": 3, "side": 16, "out": "x.npz"}]'

``trajectory(seed)`` is importable without TensorFlow, so tests know what was written.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

SIDE, STEPS = 16, 30


def trajectory(seed: int) -> dict[str, np.ndarray]:
    """The seeded trajectory written as one BAIR record: two cameras, actions, end-effector."""
    rng = np.random.default_rng(seed)
    return {"aux": rng.integers(0, 256, (STEPS, SIDE, SIDE, 3), dtype=np.uint8),
            "main": rng.integers(0, 256, (STEPS, SIDE, SIDE, 3), dtype=np.uint8),
            "action": rng.standard_normal((STEPS, 4)).astype(np.float32),
            "pos": rng.standard_normal((STEPS, 3)).astype(np.float32)}


def _write(tf, path: str, seeds: list[int], drop_key: str | None) -> None:
    """One tf.train.Example per trajectory, with BAIR's feature names."""
    def bytes_feat(b: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[b]))

    def float_feat(v: np.ndarray):
        return tf.train.Feature(float_list=tf.train.FloatList(value=v.tolist()))

    with tf.io.TFRecordWriter(path) as writer:
        for seed in seeds:
            tr = trajectory(seed)
            feats = {}
            for t in range(STEPS):
                feats[f"{t}/image_aux1/encoded"] = bytes_feat(tr["aux"][t].tobytes())
                feats[f"{t}/image_main/encoded"] = bytes_feat(tr["main"][t].tobytes())
                feats[f"{t}/action"] = float_feat(tr["action"][t])
                feats[f"{t}/endeffector_pos"] = float_feat(tr["pos"][t])
            feats.pop(drop_key, None)
            writer.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())


def _read(tf, path: str, step: int, side: int, out: str) -> None:
    """Parse step ``step`` of the only record in ``path`` with TensorFlow; save it as npz."""
    spec = {f"{step}/image_main/encoded": tf.io.FixedLenFeature([], tf.string),
            f"{step}/action": tf.io.FixedLenFeature([4], tf.float32),
            f"{step}/endeffector_pos": tf.io.FixedLenFeature([3], tf.float32)}
    (record,) = list(tf.data.TFRecordDataset(path))
    ex = tf.io.parse_single_example(record, spec)
    frame = np.frombuffer(ex[f"{step}/image_main/encoded"].numpy(), np.uint8).reshape(side, side, 3)
    np.savez(out, frame=frame, action=ex[f"{step}/action"].numpy(), pos=ex[f"{step}/endeffector_pos"].numpy())


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    for task in json.loads(argv[0]):
        if task["op"] == "write":
            _write(tf, task["path"], task["seeds"], task.get("drop_key"))
        else:
            _read(tf, task["path"], task["step"], task["side"], task["out"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
