"""``tf.train.Example`` decoding and encoding straight from the protobuf wire format.

The schema is three tiny messages (field numbers as in TensorFlow's ``feature.proto``)::

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }   // map entry: key = 1, value = 2
    Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                            Int64List int64_list = 3; } }   // each: repeated value = 1

Decoding here avoids generated ``*_pb2`` modules, which clash with TensorFlow's when both are
imported (see :mod:`mbvc.data.tfrecord_io`). Features are split lazily: a record's keys are
indexed once and a value is decoded only when asked for.
"""
from __future__ import annotations

import numpy as np

from mbvc.errors import DataError, did_you_mean

_KINDS = {1: "bytes_list", 2: "float_list", 3: "int64_list"}


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: memoryview):  # noqa: ANN202 - generator of (field, wire_type, value)
    """Yield ``(field_number, wire_type, value)``; value is an int or a memoryview."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError("length-delimited field runs past the message")
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise ValueError("fixed-size field runs past the message")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield field, wire, value


class Example:
    """A decoded ``tf.train.Example`` with accessors whose errors name file, record and key.

    Args:
        data: serialized Example.
        where: ``"<file> record <i>"``, for messages.
    """

    def __init__(self, data: bytes | memoryview, where: str) -> None:
        self.where = where
        self.features: dict[str, memoryview] = {}
        try:
            for field, wire, features in _fields(memoryview(data)):
                if field != 1 or wire != 2:
                    continue
                for f2, w2, entry in _fields(features):
                    if f2 != 1 or w2 != 2:
                        continue
                    key, value = "", memoryview(b"")
                    for f3, w3, v in _fields(entry):
                        if f3 == 1 and w3 == 2:
                            key = bytes(v).decode("utf-8")
                        elif f3 == 2 and w3 == 2:
                            value = v
                    self.features[key] = value
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{where}: not a tf.train.Example ({exc})") from exc

    def __contains__(self, key: str) -> bool:
        return key in self.features

    def kind(self, key: str) -> str:
        """``bytes_list``, ``float_list``, ``int64_list`` (or ``empty``) of a present key."""
        for field, wire, _ in _fields(self.features[key]):
            if wire == 2 and field in _KINDS:
                return _KINDS[field]
        return "empty"

    def _payloads(self, key: str, kind: str) -> list[tuple[int, int | memoryview]]:
        if key not in self.features:
            raise DataError(f"{self.where}: feature {key!r} missing (expected a {kind} feature)."
                            + did_you_mean(key, list(self.features)))
        found = self.kind(key)
        if found != kind:
            raise DataError(f"{self.where}: feature {key!r} is {found}, expected {kind}")
        for field, _, value in _fields(self.features[key]):
            if _KINDS.get(field) == kind:
                return [(w, v) for f, w, v in _fields(value) if f == 1]
        return []

    def bytes(self, key: str) -> memoryview:
        """The single bytes value of ``key`` (a zero-copy view)."""
        values = [v for w, v in self._payloads(key, "bytes_list") if w == 2]
        if len(values) != 1:
            raise DataError(f"{self.where}: feature {key!r} holds {len(values)} byte strings, expected 1")
        return values[0]

    def floats(self, key: str, size: int | None = None) -> np.ndarray:
        """The float values of ``key`` as float32 ``(size,)`` (packed or not)."""
        chunks = [bytes(v) for _, v in self._payloads(key, "float_list")]  # packed or one per value
        values = np.frombuffer(b"".join(chunks), dtype="<f4").astype(np.float32)
        if size is not None and values.shape != (size,):
            raise DataError(f"{self.where}: feature {key!r} has {values.size} floats, expected {size}")
        return values


def _tag(field: int, wire: int) -> bytes:
    return _encode_varint(field << 3 | wire)


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _delimited(field: int, payload: bytes) -> bytes:
    return _tag(field, 2) + _encode_varint(len(payload)) + payload


def encode_example(features: dict[str, bytes | np.ndarray]) -> bytes:
    """Serialize a ``tf.train.Example``: bytes values as bytes_list, arrays as (packed) float_list."""
    entries = []
    for key, value in features.items():
        if isinstance(value, (bytes, bytearray, memoryview)):
            feature = _delimited(1, _delimited(1, bytes(value)))
        else:
            packed = np.asarray(value, dtype="<f4").ravel().tobytes()
            feature = _delimited(2, _delimited(1, packed) if packed else b"")
        entries.append(_delimited(1, _delimited(1, key.encode("utf-8")) + _delimited(2, feature)))
    return _delimited(1, b"".join(entries))
