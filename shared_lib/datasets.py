"""MNIST, Fashion-MNIST and CIFAR-10 as NamedTuples of JAX arrays, behind a validated on-disk cache.

    data = load_supervised_image("mnist")           # X: (60000, 1, 28, 28) uint8, y: (60000,) int32
    flat = load_supervised_1d("cifar10", n_tr=5000)  # X: (5000, 3072) uint8

Where the data comes from, first source that has it wins:

1. A local data folder: the `data_dir` argument, else the `SEEWHY_DATA_DIR` environment variable.
   It contains one subfolder per dataset name (`mnist/`, `fashion_mnist/`, `cifar10/`) with that
   dataset's canonical distribution files:
   - MNIST and Fashion-MNIST: the four IDX files (`train-images-idx3-ubyte.gz`,
     `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`),
     gzipped or not;
   - CIFAR-10: the `cifar-10-batches-py/` folder of the python distribution;
   - any of them: a Hugging Face parquet export (`train-*.parquet` and `test-*.parquet`, found
     anywhere below the subfolder).
2. The Hugging Face hub, through `datasets.load_dataset`. `HF_HUB_OFFLINE=1` restricts it to the
   local Hugging Face cache.

The decoded arrays are cached once per dataset and source under `SEEWHY_CACHE_DIR` (default
`$XDG_CACHE_HOME/seewhy/datasets`, else `~/.cache/seewhy/datasets`) as `.npy` files plus a
`manifest.json` with the format version, shapes, dtypes, sizes and an xxh3-128 checksum of every
array. A cache hit maps the files into memory and hands them to JAX without a copy, after checking
the manifest and checksums. Entries are written to a temporary folder and renamed into place, so an
interrupted process or two processes loading at once never leave a broken entry. An entry that
fails validation is rebuilt with a warning. No pickle is written or read for the cache.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import logging
import os
import pickle
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import xxhash

__all__ = [
    "DATASET_NAMES",
    "DatasetFileError",
    "DatasetNotFoundError",
    "ImageClassification",
    "Supervised1D",
    "load_supervised_1d",
    "load_supervised_image",
]

logger = logging.getLogger(__name__)

DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10")

# Image shape (C, H, W) and number of classes of each dataset.
_IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
_NUM_CLASSES = 10
_HUB_IDS = {
    "mnist": "ylecun/mnist",
    "fashion_mnist": "zalando-datasets/fashion_mnist",
    "cifar10": "uoft-cs/cifar10",
}
_IDX_FILES = {
    "X_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "X_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))

# Bump when the cached layout or decoding changes; older entries are then rebuilt.
CACHE_FORMAT_VERSION = 1
_ARRAY_NAMES = ("X_train", "y_train", "X_test", "y_test")


class ImageClassification(NamedTuple):
    """An image classification dataset; X is (N, C, H, W) uint8 and y is (N,) int32."""

    n_samples: int
    n_test_samples: int
    d_x: tuple[int, int]  # (H, W)
    d_y: int  # number of classes
    n_channels: int
    X: jax.Array
    y: jax.Array
    X_test: jax.Array
    y_test: jax.Array


class Supervised1D(NamedTuple):
    """A dataset of flat feature vectors; X is (N, C*H*W) uint8 in channel-major order, y is (N,) int32."""

    n_samples: int
    d_x: int
    d_y: int
    X: jax.Array
    y: jax.Array
    X_test: jax.Array
    y_test: jax.Array


class DatasetFileError(ValueError):
    """A dataset file is truncated, malformed or inconsistent with its companion files."""


class DatasetNotFoundError(FileNotFoundError):
    """No source could provide the dataset."""


class _Splits(NamedTuple):
    """Decoded arrays of one dataset as NumPy arrays: images (N, C, H, W) uint8, labels (N,) int32."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


class _Source(NamedTuple):
    """A place that can provide a dataset: what to log, what identifies its content, how to read it."""

    description: str
    fingerprint: str
    read: Callable[[], _Splits]


# ---------------------------------------------------------------------------------------------
# Public loaders


def load_supervised_image(
    data: str,
    n_tr: int | None = None,
    n_tst: int | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> ImageClassification:
    """Load an image classification dataset as JAX arrays in (N, C, H, W) uint8 layout.

    Args:
        data: one of `DATASET_NAMES`.
        n_tr: keep the first `n_tr` training examples (all when None).
        n_tst: keep the first `n_tst` test examples (all when None).
        data_dir: local data folder; defaults to `SEEWHY_DATA_DIR`.
        cache_dir: cache folder; defaults to `SEEWHY_CACHE_DIR` or the user cache folder.

    Raises:
        ValueError: unknown dataset name, or `n_tr`/`n_tst` outside 1..split size.
        DatasetFileError: a local file is truncated or malformed (the message names it).
        DatasetNotFoundError: no source had the dataset (the message lists what was tried).
    """
    splits = _load_splits(data, data_dir, cache_dir)
    n_train = _check_count("n_tr", n_tr, len(splits.y_train), data)
    n_test = _check_count("n_tst", n_tst, len(splits.y_test), data)
    channels, height, width = splits.X_train.shape[1:]
    return ImageClassification(
        n_samples=n_train,
        n_test_samples=n_test,
        d_x=(height, width),
        d_y=_NUM_CLASSES,
        n_channels=channels,
        X=_to_jax(splits.X_train[:n_train]),
        y=_to_jax(splits.y_train[:n_train]),
        X_test=_to_jax(splits.X_test[:n_test]),
        y_test=_to_jax(splits.y_test[:n_test]),
    )


def load_supervised_1d(
    data: str,
    n_tr: int | None = None,
    n_tst: int | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Supervised1D:
    """Load a dataset with each image flattened to a (C*H*W,) uint8 vector; arguments as `load_supervised_image`."""
    images = load_supervised_image(data, n_tr, n_tst, data_dir=data_dir, cache_dir=cache_dir)
    d_x = images.n_channels * images.d_x[0] * images.d_x[1]
    return Supervised1D(
        n_samples=images.n_samples,
        d_x=d_x,
        d_y=images.d_y,
        X=images.X.reshape(images.n_samples, d_x),
        y=images.y,
        X_test=images.X_test.reshape(images.n_test_samples, d_x),
        y_test=images.y_test,
    )


def _check_count(argument: str, value: int | None, available: int, data: str) -> int:
    if value is None:
        return available
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 1 <= value <= available:
        raise ValueError(
            f"{argument} must be an integer from 1 to {available} (the size of that {data} split), got {value!r}"
        )
    return int(value)


def _to_jax(array: np.ndarray) -> jax.Array:
    # The cached arrays are memory-mapped and 64-byte aligned, so on the CPU backend device_put
    # aliases the mapped pages instead of copying them. Cache files are never modified in place
    # (entries are replaced by renaming), so the mapping stays valid for the array's lifetime.
    return jax.device_put(array)


# ---------------------------------------------------------------------------------------------
# Resolving a source and the cache


def _load_splits(data: str, data_dir, cache_dir) -> _Splits:
    if data not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {data!r}; expected one of {', '.join(DATASET_NAMES)}")

    tried = []
    folder = _dataset_folder(data, data_dir)
    local = _local_source(data, folder) if folder is not None else None
    if local is not None:
        return _cached_or_built(data, local, cache_dir)
    if folder is None:
        tried.append("local folder: none set (pass data_dir= or set SEEWHY_DATA_DIR)")
    elif not folder.is_dir():
        tried.append(f"local folder {folder}: does not exist")
    else:
        tried.append(f"local folder {folder}: no IDX, CIFAR-10 batch or parquet files found")

    hub = _hub_source(data)
    if not _entry_path(data, hub, cache_dir).exists():
        cached = _any_cached_entry(data, cache_dir)
        if cached is not None:
            return cached
    try:
        return _cached_or_built(data, hub, cache_dir)
    except (DatasetFileError, KeyboardInterrupt):
        raise
    except Exception as error:  # The hub fails in many ways: offline, DNS, HTTP, missing cache.
        tried.append(f"{hub.description}: {type(error).__name__}: {error}")

    raise DatasetNotFoundError(
        f"could not load {data!r}. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nTo work offline, put the dataset's files in <data folder>/{data}/ "
        "(for MNIST-style data the four IDX .gz files, for CIFAR-10 the cifar-10-batches-py/ folder, "
        "or a Hugging Face parquet export with train-*.parquet and test-*.parquet) and set "
        "SEEWHY_DATA_DIR=<data folder>."
        + ("" if os.environ.get("HF_HUB_OFFLINE") else " Set HF_HUB_OFFLINE=1 to skip the hub's network retries.")
    )


def _dataset_folder(data: str, data_dir) -> Path | None:
    root = data_dir if data_dir is not None else os.environ.get("SEEWHY_DATA_DIR")
    if not root:
        return None
    return Path(root).expanduser() / data


def _cache_root(cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("SEEWHY_CACHE_DIR"):
        return Path(os.environ["SEEWHY_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seewhy" / "datasets"


def _entry_path(data: str, source: _Source, cache_dir) -> Path:
    digest = xxhash.xxh3_64_hexdigest(source.fingerprint.encode())
    return _cache_root(cache_dir) / f"{data}-v{CACHE_FORMAT_VERSION}-{digest}"


def _any_cached_entry(data: str, cache_dir) -> _Splits | None:
    """Return the newest valid cache entry of `data` from any source, or None.

    Used when no local folder has the dataset, so that a copy cached from local files earlier
    is preferred to downloading the same data from the hub.
    """
    root = _cache_root(cache_dir)
    if not root.is_dir():
        return None
    def modified(entry: Path) -> float:
        try:
            return entry.stat().st_mtime
        except FileNotFoundError:  # Discarded by another process meanwhile.
            return 0.0

    entries = sorted(root.glob(f"{data}-v{CACHE_FORMAT_VERSION}-*"), key=modified, reverse=True)
    for entry in entries:
        try:
            splits = _read_entry(entry)
        except _InvalidEntry:
            continue
        logger.info("No local files for %s; using the copy cached at %s", data, entry)
        return splits
    return None


def _cached_or_built(data: str, source: _Source, cache_dir) -> _Splits:
    """Return the cached arrays for this source, building the cache entry first when needed."""
    entry = _entry_path(data, source, cache_dir)

    if entry.exists():
        try:
            return _read_entry(entry)
        except _InvalidEntry as error:
            logger.warning("Cache entry %s is invalid (%s); rebuilding it", entry, error)
            _discard(entry)

    logger.info("Decoding %s from %s", data, source.description)
    splits = source.read()
    _validate_splits(data, splits, source.description)
    _write_entry(entry, splits, data, source)
    logger.info("Cached %s at %s", data, entry)
    return _read_entry(entry)


# ---------------------------------------------------------------------------------------------
# Cache entries: <name>-v<version>-<source digest>/{X_train,y_train,X_test,y_test}.npy + manifest.json


class _InvalidEntry(Exception):
    pass


def _checksum(array: np.ndarray) -> str:
    return xxhash.xxh3_128_hexdigest(memoryview(np.ascontiguousarray(array)).cast("B"))


def _write_entry(entry: Path, splits: _Splits, data: str, source: _Source) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
    try:
        arrays = {}
        for name, array in zip(_ARRAY_NAMES, splits):
            _write_synced(staging / f"{name}.npy", lambda f, a=array: np.save(f, a, allow_pickle=False))
            arrays[name] = {
                "file": f"{name}.npy",
                "shape": list(array.shape),
                "dtype": array.dtype.str,
                "nbytes": int(array.nbytes),
                "xxh3_128": _checksum(array),
            }
        manifest = {
            "format_version": CACHE_FORMAT_VERSION,
            "dataset": data,
            "source": source.description,
            "fingerprint": source.fingerprint,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "arrays": arrays,
        }
        # The manifest is written last: an entry without one is never read as valid.
        _write_synced(staging / "manifest.json", lambda f: f.write(json.dumps(manifest, indent=2).encode()))
        try:
            os.rename(staging, entry)
        except OSError:
            # Another process renamed its own complete entry into place first; keep that one.
            if not (entry / "manifest.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_synced(path: Path, write: Callable) -> None:
    with open(path, "wb") as file:
        write(file)
        file.flush()
        os.fsync(file.fileno())


def _read_entry(entry: Path) -> _Splits:
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
    except (OSError, ValueError) as error:
        raise _InvalidEntry(f"unreadable manifest: {error}") from error
    if manifest.get("format_version") != CACHE_FORMAT_VERSION:
        raise _InvalidEntry(f"format version {manifest.get('format_version')!r}, expected {CACHE_FORMAT_VERSION}")

    arrays = []
    for name in _ARRAY_NAMES:
        expected = manifest["arrays"].get(name) if isinstance(manifest.get("arrays"), dict) else None
        if not expected:
            raise _InvalidEntry(f"manifest has no entry for {name}")
        try:
            array = np.load(entry / expected["file"], mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise _InvalidEntry(f"{expected['file']}: {error}") from error
        if list(array.shape) != expected["shape"] or array.dtype.str != expected["dtype"]:
            raise _InvalidEntry(
                f"{expected['file']} is {array.dtype.str}{list(array.shape)}, "
                f"manifest says {expected['dtype']}{expected['shape']}"
            )
        if _checksum(array) != expected["xxh3_128"]:
            raise _InvalidEntry(f"{expected['file']} does not match its checksum")
        arrays.append(array)
    return _Splits(*arrays)


def _discard(entry: Path) -> None:
    # Rename first so that a concurrent reader never sees a half-deleted entry under the real name.
    doomed = entry.with_name(f".{entry.name}.stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(entry, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def _validate_splits(data: str, splits: _Splits, where: str) -> None:
    expected_shape = _IMAGE_SHAPES[data]
    for images, labels, split in ((splits.X_train, splits.y_train, "train"), (splits.X_test, splits.y_test, "test")):
        if images.dtype != np.uint8 or images.shape[1:] != expected_shape:
            raise DatasetFileError(
                f"{where}: {split} images are {images.dtype}{images.shape}, "
                f"expected uint8 (N, {', '.join(map(str, expected_shape))}) for {data}"
            )
        if len(images) != len(labels):
            raise DatasetFileError(f"{where}: {len(images)} {split} images but {len(labels)} labels")
        if len(labels) == 0:
            raise DatasetFileError(f"{where}: the {split} split is empty")
        if labels.min() < 0 or labels.max() >= _NUM_CLASSES:
            raise DatasetFileError(
                f"{where}: {split} labels range from {labels.min()} to {labels.max()}, expected 0 to {_NUM_CLASSES - 1}"
            )


# ---------------------------------------------------------------------------------------------
# Local sources


def _local_source(data: str, folder: Path) -> _Source | None:
    """Return the first kind of local files present in `folder`: IDX, CIFAR-10 batches, parquet."""
    if not folder.is_dir():
        return None
    if data == "cifar10" and (folder / _CIFAR_FOLDER).is_dir():
        paths = [folder / _CIFAR_FOLDER / name for name in (*_CIFAR_TRAIN_BATCHES, "test_batch")]
        return _Source(f"CIFAR-10 batches in {folder / _CIFAR_FOLDER}", _fingerprint(paths), lambda: _read_cifar(paths))
    if data != "cifar10":
        idx_paths = {name: _find_idx_file(folder, stem) for name, stem in _IDX_FILES.items()}
        if any(idx_paths.values()):
            missing = [_IDX_FILES[name] + ".gz" for name, path in idx_paths.items() if path is None]
            if missing:
                raise DatasetFileError(f"IDX files in {folder} are incomplete: missing {', '.join(missing)}")
            paths = [idx_paths[name] for name in _ARRAY_NAMES]
            return _Source(f"IDX files in {folder}", _fingerprint(paths), lambda: _read_idx_splits(paths))
    train_files = sorted(folder.rglob("train-*.parquet"))
    test_files = sorted(folder.rglob("test-*.parquet"))
    if train_files or test_files:
        if not (train_files and test_files):
            raise DatasetFileError(f"parquet export in {folder} needs both train-*.parquet and test-*.parquet files")
        return _Source(
            f"parquet files in {folder}",
            _fingerprint(train_files + test_files),
            lambda: _read_parquet_splits(data, train_files, test_files),
        )
    return None


def _find_idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _fingerprint(paths: Sequence[Path]) -> str:
    """Identify local files by absolute path, size and modification time, so edited files are re-read."""
    parts = []
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise DatasetFileError(f"missing dataset file {path}") from None
        parts.append(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(parts)


# IDX: a big-endian header of magic (0, 0, type code, number of dimensions) and one uint32 per
# dimension, then the data. MNIST uses type code 0x08 (unsigned byte) throughout.
_IDX_UBYTE = 0x08


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DatasetFileError(f"cannot read {path}: {error}") from error

    if len(raw) < 4 + 4 * ndim or raw[0] != 0 or raw[1] != 0:
        raise DatasetFileError(f"{path} is not an IDX file (bad header)")
    if raw[2] != _IDX_UBYTE or raw[3] != ndim:
        raise DatasetFileError(
            f"{path}: IDX type code {raw[2]:#04x} with {raw[3]} dimensions, expected {_IDX_UBYTE:#04x} with {ndim}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DatasetFileError(
            f"{path} is truncated or malformed: header says {shape} = {int(np.prod(shape))} bytes of data, found {data.size}"
        )
    return data.reshape(shape)


def _read_idx_splits(paths: Sequence[Path]) -> _Splits:
    X_train, y_train, X_test, y_test = (
        _read_idx(path, ndim) for path, ndim in zip(paths, (3, 1, 3, 1))
    )
    return _Splits(
        X_train=X_train[:, None, :, :],
        y_train=y_train.astype(np.int32),
        X_test=X_test[:, None, :, :],
        y_test=y_test.astype(np.int32),
    )


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR-10 python batches that rejects every global but NumPy's array rebuild.

    The batches are the dataset's canonical distribution. They are pickles of dicts of bytes, lists
    and NumPy arrays, so nothing else needs to be importable while reading them.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}, which is not allowed")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as file:
            batch = _CifarUnpickler(file, encoding="bytes").load()
        images = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int32)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as error:
        raise DatasetFileError(f"cannot read CIFAR-10 batch {path}: {error}") from error
    if images.ndim != 2 or images.shape[1] != 3 * 32 * 32:
        raise DatasetFileError(f"{path}: data has shape {images.shape}, expected (N, 3072)")
    return images.reshape(-1, 3, 32, 32), labels


def _read_cifar(paths: Sequence[Path]) -> _Splits:
    batches = [_read_cifar_batch(path) for path in paths]
    train, (X_test, y_test) = batches[:-1], batches[-1]
    return _Splits(
        X_train=np.concatenate([images for images, _ in train]),
        y_train=np.concatenate([labels for _, labels in train]),
        X_test=X_test,
        y_test=y_test,
    )


# Parquet exports and hub datasets store each image as a struct of PNG bytes and a path.
_DECODE_CHUNK = 2048


def _read_parquet_splits(data: str, train_files: Sequence[Path], test_files: Sequence[Path]) -> _Splits:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def read(files: Sequence[Path]):
        try:
            return pa.concat_tables([pq.read_table(path) for path in files])
        except (OSError, pa.ArrowException) as error:
            raise DatasetFileError(f"cannot read parquet files {', '.join(map(str, files))}: {error}") from error

    X_train, y_train = _decode_table(data, read(train_files), f"{train_files[0].parent}")
    X_test, y_test = _decode_table(data, read(test_files), f"{test_files[0].parent}")
    return _Splits(X_train, y_train, X_test, y_test)


def _decode_table(data: str, table, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode an Arrow table with an image column ("image" or "img") and a "label" column."""
    image_column = next((name for name in ("image", "img") if name in table.column_names), None)
    if image_column is None or "label" not in table.column_names:
        raise DatasetFileError(
            f"{where}: expected an 'image' (or 'img') column and a 'label' column, found {table.column_names}"
        )
    images = table.column(image_column).combine_chunks()
    encoded = images.field("bytes").to_pylist() if hasattr(images, "field") else images.to_pylist()
    labels = table.column("label").to_numpy().astype(np.int32)
    return _decode_images(encoded, _IMAGE_SHAPES[data], where), labels


def _decode_images(encoded: Sequence[bytes], shape: tuple[int, int, int], where: str) -> np.ndarray:
    """Decode PNG or JPEG bytes into one (N, C, H, W) uint8 array, using a few threads."""
    from PIL import Image

    channels, height, width = shape
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(encoded), height, width, channels), dtype=np.uint8)

    def decode(index: int) -> None:
        try:
            with Image.open(io.BytesIO(encoded[index])) as image:
                pixels = np.asarray(image.convert(mode))
        except Exception as error:  # PIL raises many types for corrupt data.
            raise DatasetFileError(f"{where}: image {index} cannot be decoded: {error}") from error
        if pixels.shape[:2] != (height, width):
            raise DatasetFileError(f"{where}: image {index} is {pixels.shape[:2]}, expected {(height, width)}")
        out[index] = pixels.reshape(height, width, channels)

    def decode_chunk(start: int) -> None:
        for index in range(start, min(start + _DECODE_CHUNK, len(encoded))):
            decode(index)

    # PIL releases the GIL while decoding, so threads overlap the work.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(decode_chunk, range(0, len(encoded), _DECODE_CHUNK)))
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


# ---------------------------------------------------------------------------------------------
# The Hugging Face hub


def _hub_source(data: str) -> _Source:
    hub_id = _HUB_IDS[data]

    def read() -> _Splits:
        import datasets

        return _splits_from_dataset_dict(data, datasets.load_dataset(hub_id), f"hub dataset {hub_id}")

    return _Source(f"Hugging Face hub dataset {hub_id}", f"hub:{hub_id}", read)


def _splits_from_dataset_dict(data: str, dataset_dict, where: str) -> _Splits:
    """Decode the "train" and "test" splits of a `datasets.DatasetDict` without its per-example formatters.

    Reading the Arrow table directly and decoding all images into one NumPy array avoids the
    `with_format("jax")` path, whose cost grows much faster than linearly with the number of images.
    """
    X_train, y_train = _decode_table(data, dataset_dict["train"].data.table, f"{where} (train)")
    X_test, y_test = _decode_table(data, dataset_dict["test"].data.table, f"{where} (test)")
    return _Splits(X_train, y_train, X_test, y_test)
