"""Activation store: sharded safetensors, checksummed, resumable; streaming reader.

``StoreWriter`` appends activations (no model needed); ``open_store`` reads them back as
metadata, rows, or shuffled fixed-size batches for SAE training. Format: docs/store_format.md.
"""

from radinterp.store.batches import SiteBatches
from radinterp.store.format import META_COLUMNS, STORE_DTYPES, StoreError
from radinterp.store.manifest import make_manifest, read_manifest
from radinterp.store.reader import Store, open_store
from radinterp.store.writer import StoreWriter

__all__ = [
    "META_COLUMNS",
    "STORE_DTYPES",
    "SiteBatches",
    "Store",
    "StoreError",
    "StoreWriter",
    "make_manifest",
    "open_store",
    "read_manifest",
]
