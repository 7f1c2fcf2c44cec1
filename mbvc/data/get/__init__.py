"""Fetch the published datasets (Moving MNIST, KTH, BAIR) once: downloaded, verified, prepared.

``mbvc data get NAME`` calls :func:`get_dataset`; ``mbvc data list`` reads :data:`SOURCES` and
:func:`dataset_status`. A dataset lives in ``<root>/<name>`` (root: ``$MBVC_DATA``, else
``~/.cache/mbvc/data``) with a manifest (:mod:`mbvc.data.get.manifest`) that the data configs
read: a ``kth`` or ``bair`` config with an empty ``data.root`` (and ``mnist_seq`` with no
val/test paths) uses the complete dataset found there. Downloads use the standard library (``urllib``).

Example:
    >>> from mbvc.data.get import get_dataset
    >>> report = get_dataset("moving_mnist")          # doctest: +SKIP
    >>> report.folder, report.wall, report.disk        # doctest: +SKIP
"""
from __future__ import annotations

from mbvc.data.get.manifest import complete_folder, dataset_folder, human_size
from mbvc.data.get.manifest import status as dataset_status
from mbvc.data.get.prepare import KTH_IMAGE_SIZES, GetReport, get_dataset
from mbvc.data.get.sources import SOURCES, DatasetSource, RemoteFile, default_root, get_source, url_variable

__all__ = ["KTH_IMAGE_SIZES", "SOURCES", "DatasetSource", "GetReport", "RemoteFile", "complete_folder",
           "dataset_folder", "dataset_status", "default_root", "get_dataset", "get_source", "human_size",
           "url_variable"]
