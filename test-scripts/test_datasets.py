"""Tests for shared_lib.datasets on small files written here, and on real MNIST when SEEWHY_DATA_DIR is set."""

import gzip
import io
import json
import multiprocessing
import os
import pickle
import struct
from pathlib import Path

# The hub is unreachable in tests; without this, each miss waits through the hub client's retries.
os.environ["HF_HUB_OFFLINE"] = "1"

import jax
import numpy as np
import pytest

from shared_lib import datasets
from shared_lib.datasets import (
    DatasetFileError,
    DatasetNotFoundError,
    load_supervised_1d,
    load_supervised_image,
)

N_TRAIN, N_TEST = 50, 20


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("SEEWHY_CACHE_DIR", str(path))
    return path


def make_images(count: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count).astype(np.int32)
    return images, labels


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(folder: Path, compress: bool = True) -> dict[str, np.ndarray]:
    """Write a tiny MNIST-style dataset as the four IDX files and return its arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    X_train, y_train = make_images(N_TRAIN, (28, 28), seed=0)
    X_test, y_test = make_images(N_TEST, (28, 28), seed=1)
    arrays = {"X_train": X_train, "y_train": y_train, "X_test": X_test, "y_test": y_test}
    for name, stem in datasets._IDX_FILES.items():
        data = idx_bytes(arrays[name])
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


def png_bytes(image_hwc: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    pixels = image_hwc[..., 0] if image_hwc.shape[-1] == 1 else image_hwc
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_parquet_split(path: Path, images_nchw: np.ndarray, labels: np.ndarray, image_column: str) -> None:
    """Write a split in the layout of a Hugging Face parquet export: struct{bytes, path} images and labels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    encoded = [{"bytes": png_bytes(image.transpose(1, 2, 0)), "path": None} for image in images_nchw]
    table = pa.table({image_column: encoded, "label": pa.array(labels, type=pa.int64())})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def write_cifar_batches(folder: Path) -> dict[str, np.ndarray]:
    """Write CIFAR-10 python batches (5 train, 1 test) and return the arrays in (N, 3, 32, 32) layout."""
    batch_dir = folder / "cifar-10-batches-py"
    batch_dir.mkdir(parents=True)
    train_parts = []
    for index in range(1, 6):
        images, labels = make_images(4, (3, 32, 32), seed=10 + index)
        train_parts.append((images, labels))
        batch = {b"data": images.reshape(4, -1), b"labels": labels.tolist(), b"batch_label": b"x"}
        (batch_dir / f"data_batch_{index}").write_bytes(pickle.dumps(batch))
    X_test, y_test = make_images(6, (3, 32, 32), seed=20)
    test_batch = {b"data": X_test.reshape(6, -1), b"labels": y_test.tolist()}
    (batch_dir / "test_batch").write_bytes(pickle.dumps(test_batch))
    return {
        "X_train": np.concatenate([images for images, _ in train_parts]),
        "y_train": np.concatenate([labels for _, labels in train_parts]),
        "X_test": X_test,
        "y_test": y_test,
    }


def assert_matches(loaded, arrays: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(np.asarray(loaded.X), arrays["X_train"].reshape(loaded.X.shape))
    np.testing.assert_array_equal(np.asarray(loaded.y), arrays["y_train"])
    np.testing.assert_array_equal(np.asarray(loaded.X_test), arrays["X_test"].reshape(loaded.X_test.shape))
    np.testing.assert_array_equal(np.asarray(loaded.y_test), arrays["y_test"])


# ---------------------------------------------------------------------------------------------
# Sources


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_load(tmp_path, cache_dir, compress):
    arrays = write_idx_dataset(tmp_path / "data" / "mnist", compress=compress)
    data = load_supervised_image("mnist", data_dir=tmp_path / "data")

    assert isinstance(data.X, jax.Array)
    assert data.X.shape == (N_TRAIN, 1, 28, 28)
    assert data.X.dtype == np.uint8
    assert data.y.dtype == np.int32
    assert (data.n_samples, data.n_test_samples) == (N_TRAIN, N_TEST)
    assert data.d_x == (28, 28)
    assert data.d_y == 10
    assert data.n_channels == 1
    assert_matches(data, {**arrays, "X_train": arrays["X_train"][:, None], "X_test": arrays["X_test"][:, None]})


def test_data_dir_from_environment(tmp_path, cache_dir, monkeypatch):
    arrays = write_idx_dataset(tmp_path / "data" / "fashion_mnist")
    monkeypatch.setenv("SEEWHY_DATA_DIR", str(tmp_path / "data"))
    data = load_supervised_image("fashion_mnist")
    np.testing.assert_array_equal(np.asarray(data.y_test), arrays["y_test"])


def test_parquet_export_loads(tmp_path, cache_dir):
    idx_arrays = write_idx_dataset(tmp_path / "idx" / "mnist")
    export = tmp_path / "parquet" / "mnist" / "mnist"
    X_train = idx_arrays["X_train"][:, None]
    X_test = idx_arrays["X_test"][:, None]
    write_parquet_split(export / "train-00000-of-00001.parquet", X_train, idx_arrays["y_train"], "image")
    write_parquet_split(export / "test-00000-of-00001.parquet", X_test, idx_arrays["y_test"], "image")

    from_parquet = load_supervised_image("mnist", data_dir=tmp_path / "parquet")
    from_idx = load_supervised_image("mnist", data_dir=tmp_path / "idx")

    np.testing.assert_array_equal(np.asarray(from_parquet.X), np.asarray(from_idx.X))
    np.testing.assert_array_equal(np.asarray(from_parquet.y), np.asarray(from_idx.y))
    np.testing.assert_array_equal(np.asarray(from_parquet.X_test), np.asarray(from_idx.X_test))


def test_cifar_parquet_keeps_channels(tmp_path, cache_dir):
    X_train, y_train = make_images(8, (3, 32, 32), seed=3)
    X_test, y_test = make_images(4, (3, 32, 32), seed=4)
    folder = tmp_path / "data" / "cifar10" / "plain_text"
    write_parquet_split(folder / "train-00000-of-00001.parquet", X_train, y_train, "img")
    write_parquet_split(folder / "test-00000-of-00001.parquet", X_test, y_test, "img")

    data = load_supervised_image("cifar10", data_dir=tmp_path / "data")

    assert data.X.shape == (8, 3, 32, 32)
    assert data.n_channels == 3
    assert_matches(data, {"X_train": X_train, "y_train": y_train, "X_test": X_test, "y_test": y_test})


def test_datasets_library_table_decodes(tmp_path):
    """The hub path decodes a real `datasets.DatasetDict`; here one built offline from parquet files."""
    import datasets as hf_datasets

    X_train, y_train = make_images(6, (1, 28, 28), seed=5)
    X_test, y_test = make_images(3, (1, 28, 28), seed=6)
    write_parquet_split(tmp_path / "train-0.parquet", X_train, y_train, "image")
    write_parquet_split(tmp_path / "test-0.parquet", X_test, y_test, "image")
    dataset_dict = hf_datasets.load_dataset(
        "parquet",
        data_files={"train": str(tmp_path / "train-0.parquet"), "test": str(tmp_path / "test-0.parquet")},
        cache_dir=str(tmp_path / "hf-cache"),
    )

    splits = datasets._splits_from_dataset_dict("mnist", dataset_dict, "test dataset")

    np.testing.assert_array_equal(splits.X_train, X_train)
    np.testing.assert_array_equal(splits.y_train, y_train)
    np.testing.assert_array_equal(splits.X_test, X_test)


def test_cifar_batches_load(tmp_path, cache_dir):
    arrays = write_cifar_batches(tmp_path / "data" / "cifar10")
    data = load_supervised_image("cifar10", data_dir=tmp_path / "data")

    assert data.X.shape == (20, 3, 32, 32)
    assert data.X_test.shape == (6, 3, 32, 32)
    assert_matches(data, arrays)


def test_cifar_batch_rejects_code(tmp_path, cache_dir):
    class RunsCommand:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    write_cifar_batches(tmp_path / "data" / "cifar10")
    batch = tmp_path / "data" / "cifar10" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(pickle.dumps({b"data": RunsCommand(), b"labels": []}))

    with pytest.raises(DatasetFileError, match="data_batch_3"):
        load_supervised_image("cifar10", data_dir=tmp_path / "data")
    assert not (tmp_path / "pwned").exists()


def test_flat_layout(tmp_path, cache_dir):
    arrays = write_cifar_batches(tmp_path / "data" / "cifar10")
    flat = load_supervised_1d("cifar10", n_tr=7, n_tst=2, data_dir=tmp_path / "data")

    assert flat.X.shape == (7, 3072)
    assert flat.d_x == 3072
    assert flat.d_y == 10
    assert flat.n_samples == 7
    np.testing.assert_array_equal(np.asarray(flat.X), arrays["X_train"][:7].reshape(7, -1))
    np.testing.assert_array_equal(np.asarray(flat.X_test), arrays["X_test"][:2].reshape(2, -1))


# ---------------------------------------------------------------------------------------------
# Arguments and bad files


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="mnist, fashion_mnist, cifar10"):
        load_supervised_image("svhn")


@pytest.mark.parametrize("bad", [0, -3, N_TRAIN + 1, 2.5, True, "10"])
def test_bad_n_tr_names_range(tmp_path, cache_dir, bad):
    write_idx_dataset(tmp_path / "data" / "mnist")
    with pytest.raises(ValueError, match=f"from 1 to {N_TRAIN}") as error:
        load_supervised_image("mnist", n_tr=bad, data_dir=tmp_path / "data")
    assert repr(bad) in str(error.value)


def test_bad_n_tst_names_range(tmp_path, cache_dir):
    write_idx_dataset(tmp_path / "data" / "mnist")
    with pytest.raises(ValueError, match=f"n_tst must be an integer from 1 to {N_TEST}"):
        load_supervised_image("mnist", n_tst=N_TEST + 1, data_dir=tmp_path / "data")


def test_slices_are_prefixes(tmp_path, cache_dir):
    arrays = write_idx_dataset(tmp_path / "data" / "mnist")
    data = load_supervised_image("mnist", n_tr=5, n_tst=3, data_dir=tmp_path / "data")

    assert (data.n_samples, data.n_test_samples) == (5, 3)
    np.testing.assert_array_equal(np.asarray(data.X[:, 0]), arrays["X_train"][:5])
    np.testing.assert_array_equal(np.asarray(data.y_test), arrays["y_test"][:3])
    assert len(list(cache_dir.iterdir())) == 1, "a slice must not create a second cache entry"


def test_truncated_gzip_names_file(tmp_path, cache_dir):
    folder = tmp_path / "data" / "mnist"
    write_idx_dataset(folder)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])

    with pytest.raises(DatasetFileError, match="train-images-idx3-ubyte.gz"):
        load_supervised_image("mnist", data_dir=tmp_path / "data")
    assert not cache_dir.exists() or not any(p.name.startswith("mnist") for p in cache_dir.iterdir())


def test_short_idx_data_names_file(tmp_path, cache_dir):
    folder = tmp_path / "data" / "mnist"
    write_idx_dataset(folder, compress=False)
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-28])

    with pytest.raises(DatasetFileError, match=r"t10k-images-idx3-ubyte is truncated"):
        load_supervised_image("mnist", data_dir=tmp_path / "data")


def test_wrong_idx_magic_names_file(tmp_path, cache_dir):
    folder = tmp_path / "data" / "mnist"
    write_idx_dataset(folder)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x01" + b"\x00" * 8))

    with pytest.raises(DatasetFileError, match="train-labels-idx1-ubyte.gz: IDX type code 0x0d"):
        load_supervised_image("mnist", data_dir=tmp_path / "data")


def test_label_count_mismatch(tmp_path, cache_dir):
    folder = tmp_path / "data" / "mnist"
    write_idx_dataset(folder)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(N_TRAIN - 1, np.uint8))))

    with pytest.raises(DatasetFileError, match=f"{N_TRAIN} train images but {N_TRAIN - 1} labels"):
        load_supervised_image("mnist", data_dir=tmp_path / "data")


def test_missing_idx_file_named(tmp_path, cache_dir):
    folder = tmp_path / "data" / "mnist"
    write_idx_dataset(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()

    with pytest.raises(DatasetFileError, match="missing t10k-labels-idx1-ubyte.gz"):
        load_supervised_image("mnist", data_dir=tmp_path / "data")


def test_no_source_lists_attempts(tmp_path, cache_dir):
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError) as error:
        load_supervised_image("mnist", data_dir=tmp_path / "data")
    message = str(error.value)
    assert f"local folder {tmp_path / 'data' / 'mnist'}: no IDX" in message
    assert "Hugging Face hub dataset ylecun/mnist" in message
    assert "SEEWHY_DATA_DIR" in message


# ---------------------------------------------------------------------------------------------
# The cache


def entry_of(cache_dir: Path) -> Path:
    (entry,) = [path for path in cache_dir.iterdir() if not path.name.startswith(".")]
    return entry


def test_cache_entry_layout(tmp_path, cache_dir):
    arrays = write_idx_dataset(tmp_path / "data" / "mnist")
    load_supervised_image("mnist", data_dir=tmp_path / "data")
    entry = entry_of(cache_dir)

    assert entry.name.startswith(f"mnist-v{datasets.CACHE_FORMAT_VERSION}-")
    assert sorted(p.name for p in entry.iterdir()) == sorted(
        ["manifest.json", "X_train.npy", "y_train.npy", "X_test.npy", "y_test.npy"]
    )
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["format_version"] == datasets.CACHE_FORMAT_VERSION
    assert manifest["arrays"]["X_train"]["shape"] == [N_TRAIN, 1, 28, 28]
    assert manifest["arrays"]["y_test"]["dtype"] == "<i4"
    assert manifest["arrays"]["X_test"]["nbytes"] == N_TEST * 784
    # Plain .npy files: they load with pickle disabled.
    np.testing.assert_array_equal(np.load(entry / "y_train.npy", allow_pickle=False), arrays["y_train"])


def test_cache_hit_skips_decoding(tmp_path, cache_dir, monkeypatch):
    write_idx_dataset(tmp_path / "data" / "mnist")
    first = load_supervised_image("mnist", data_dir=tmp_path / "data")

    def fail(*args):
        raise AssertionError("decoded the source again despite a valid cache entry")

    monkeypatch.setattr(datasets, "_read_idx_splits", fail)
    second = load_supervised_image("mnist", data_dir=tmp_path / "data")
    np.testing.assert_array_equal(np.asarray(second.X), np.asarray(first.X))


def test_cached_copy_used_without_folder(tmp_path, cache_dir, monkeypatch):
    arrays = write_idx_dataset(tmp_path / "data" / "mnist")
    load_supervised_image("mnist", data_dir=tmp_path / "data")
    monkeypatch.delenv("SEEWHY_DATA_DIR", raising=False)

    data = load_supervised_image("mnist")

    np.testing.assert_array_equal(np.asarray(data.y), arrays["y_train"])


def test_changed_source_gets_new_entry(tmp_path, cache_dir):
    folder = tmp_path / "data" / "mnist"
    write_idx_dataset(folder)
    load_supervised_image("mnist", data_dir=tmp_path / "data")
    labels = np.full(N_TRAIN, 7, np.uint8)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))

    data = load_supervised_image("mnist", data_dir=tmp_path / "data")
    np.testing.assert_array_equal(np.asarray(data.y), labels)


@pytest.mark.parametrize("damage", ["flip_byte", "truncate_npy", "bad_manifest", "no_manifest", "old_version"])
def test_damaged_entry_rebuilt(tmp_path, cache_dir, caplog, damage):
    arrays = write_idx_dataset(tmp_path / "data" / "mnist")
    load_supervised_image("mnist", data_dir=tmp_path / "data")
    entry = entry_of(cache_dir)
    npy = entry / "X_train.npy"
    manifest = entry / "manifest.json"
    if damage == "flip_byte":
        data = bytearray(npy.read_bytes())
        data[-1] ^= 0xFF
        npy.write_bytes(bytes(data))
    elif damage == "truncate_npy":
        npy.write_bytes(npy.read_bytes()[:-100])
    elif damage == "bad_manifest":
        manifest.write_text("{not json")
    elif damage == "no_manifest":
        manifest.unlink()
    elif damage == "old_version":
        content = json.loads(manifest.read_text())
        content["format_version"] = 0
        manifest.write_text(json.dumps(content))

    with caplog.at_level("WARNING", logger="shared_lib.datasets"):
        data = load_supervised_image("mnist", data_dir=tmp_path / "data")

    assert "invalid" in caplog.text
    np.testing.assert_array_equal(np.asarray(data.X)[:, 0], arrays["X_train"])
    assert entry_of(cache_dir) == entry
    assert json.loads(manifest.read_text())["format_version"] == datasets.CACHE_FORMAT_VERSION


def test_failed_write_leaves_no_entry(tmp_path, cache_dir, monkeypatch):
    write_idx_dataset(tmp_path / "data" / "mnist")
    real_save = np.save
    calls = []

    def crash_on_third(file, array, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        real_save(file, array, **kwargs)

    monkeypatch.setattr(np, "save", crash_on_third)
    with pytest.raises(OSError, match="disk full"):
        load_supervised_image("mnist", data_dir=tmp_path / "data")
    assert list(cache_dir.iterdir()) == [], "a failed write must leave neither an entry nor a staging folder"

    monkeypatch.setattr(np, "save", real_save)
    assert load_supervised_image("mnist", data_dir=tmp_path / "data").n_samples == N_TRAIN


def test_arrays_survive_rebuild(tmp_path, cache_dir):
    arrays = write_idx_dataset(tmp_path / "data" / "mnist")
    first = load_supervised_image("mnist", data_dir=tmp_path / "data")
    (entry_of(cache_dir) / "manifest.json").write_text("{}")

    load_supervised_image("mnist", data_dir=tmp_path / "data")
    # The first arrays map the replaced files; they must keep their values.
    np.testing.assert_array_equal(np.asarray(first.X)[:, 0], arrays["X_train"])
    assert int(first.X.sum()) == int(arrays["X_train"].sum())


def _load_in_child(data_dir: str, cache_dir: str, queue) -> None:
    os.environ["SEEWHY_CACHE_DIR"] = cache_dir
    data = load_supervised_image("mnist", data_dir=data_dir)
    queue.put(int(np.asarray(data.X, dtype=np.int64).sum()))


def test_concurrent_loads_agree(tmp_path, cache_dir):
    arrays = write_idx_dataset(tmp_path / "data" / "mnist")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [
        context.Process(target=_load_in_child, args=(str(tmp_path / "data"), str(cache_dir), queue)) for _ in range(4)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)

    assert [child.exitcode for child in children] == [0, 0, 0, 0]
    sums = [queue.get(timeout=5) for _ in children]
    assert sums == [int(arrays["X_train"].astype(np.int64).sum())] * 4
    entry = entry_of(cache_dir)
    assert [p for p in cache_dir.iterdir() if p != entry] == [], "staging folders left behind"
    assert load_supervised_image("mnist", data_dir=tmp_path / "data").n_samples == N_TRAIN


# ---------------------------------------------------------------------------------------------
# Real MNIST


@pytest.fixture(scope="module")
def real_mnist():
    if not os.environ.get("SEEWHY_DATA_DIR"):
        pytest.skip("SEEWHY_DATA_DIR is not set; point it at a folder with mnist/ IDX files")
    return load_supervised_image("mnist")


def test_real_mnist_train_split(real_mnist):
    labels = np.asarray(real_mnist.y)
    assert real_mnist.X.shape == (60000, 1, 28, 28)
    assert int((labels == 0).sum()) == 5923
    assert int((labels == 1).sum()) == 6742
    assert round(float(np.asarray(real_mnist.X, dtype=np.float64).mean()), 3) == 33.318


def test_real_mnist_test_split(real_mnist):
    labels = np.asarray(real_mnist.y_test)
    assert real_mnist.X_test.shape == (10000, 1, 28, 28)
    assert int((labels == 0).sum()) == 980


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))
