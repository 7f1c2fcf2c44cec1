"""TFRecord files without TensorFlow: framing with CRC checks, and tf.train.Example (de)coding.

Framing of one record: ``uint64 length | uint32 masked_crc32c(length) | data |
uint32 masked_crc32c(data)``, little-endian. The ``tfrecord`` package's iterator skips the
CRCs, and its generated ``example_pb2`` registers the same protobuf names as TensorFlow's
(``tensorflow.BytesList``...), so importing both in one process fails with "duplicate symbol"
whichever comes second. mbvc therefore reads the framing itself with ``crc32c`` (the
checksum library ``tfrecord`` uses) and decodes the three-message Example schema straight
from the protobuf wire format (see :mod:`mbvc.data.example_proto`).
"""
from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import crc32c

from mbvc.errors import DataError
from mbvc.io import atomic_write

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data``."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def iter_records(path: str | os.PathLike, check_crc: bool = True) -> Iterator[tuple[int, bytes]]:
    """Yield ``(record_index, payload)`` for every record of an uncompressed TFRecord file.

    Raises:
        DataError: missing file, truncated record or CRC mismatch (naming file, record, offset).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"TFRecord file {path} not found")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        index, offset = 0, 0
        while True:
            header = f.read(12)
            if not header:
                return
            where = f"{path} record {index} (byte offset {offset})"
            if len(header) < 12:
                raise DataError(f"{where}: truncated header, expected 12 bytes, got {len(header)}")
            (length,) = struct.unpack("<Q", header[:8])
            if check_crc and struct.unpack("<I", header[8:])[0] != masked_crc(header[:8]):
                raise DataError(f"{where}: length CRC mismatch (file corrupt or not a TFRecord)")
            if length > size - offset - 16:  # check before reading: a bad length must not allocate 2^60 bytes
                raise DataError(f"{where}: truncated record, the header claims {length} bytes, the file has "
                                f"{max(size - offset - 16, 0)} after the header")
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise DataError(f"{where}: truncated record, expected {length + 4} bytes after the "
                                f"header, got {len(data) + len(footer)}")
            if check_crc and struct.unpack("<I", footer)[0] != masked_crc(data):
                raise DataError(f"{where}: data CRC mismatch (file corrupt)")
            yield index, data
            index += 1
            offset += 16 + length


def write_records(path: str | os.PathLike, records: Iterable[bytes]) -> int:
    """Write payloads as an uncompressed TFRecord file, atomically. Returns the record count."""
    n = 0
    with atomic_write(path, "wb") as f:
        for data in records:
            length = struct.pack("<Q", len(data))
            f.write(length + struct.pack("<I", masked_crc(length)) + data
                    + struct.pack("<I", masked_crc(data)))
            n += 1
    return n
