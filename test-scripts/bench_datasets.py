"""Benchmark dataset loading: warm cache against pickle, cold parquet decoding against datasets' JAX formatter.

    SEEWHY_DATA_DIR=path/with/mnist uv run python test-scripts/bench_datasets.py

Takes about a minute on a 2-core CPU, most of it spent in the `with_format("jax")` baseline.
Both sides of each comparison run in this one process, alternating, and the medians are compared.
"""

import argparse
import io
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from shared_lib.datasets import load_supervised_image


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_parquet_export(folder: Path, images: np.ndarray, labels: np.ndarray, split: str) -> None:
    """Write (N, 1, H, W) uint8 images as a Hugging Face style parquet file of PNG bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    encoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image[0]).save(buffer, format="PNG")
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({"image": encoded, "label": pa.array(labels, type=pa.int64())})
    pq.write_table(table, folder / f"{split}-00000-of-00001.parquet")


def bench_warm(work: Path, repeats: int) -> None:
    cache = work / "warm-cache"
    data = load_supervised_image("mnist", cache_dir=cache)
    pickle_path = work / "mnist.pkl"
    pickle_path.write_bytes(pickle.dumps(data))

    def load_pickle():
        with open(pickle_path, "rb") as file:
            return pickle.load(file)

    def load_cached():
        return load_supervised_image("mnist", cache_dir=cache)

    # Alternate the two sides so that machine noise hits both alike.
    cached, pickled = [], []
    for _ in range(repeats):
        cached.append(median_seconds(load_cached, 1))
        pickled.append(median_seconds(load_pickle, 1))
    cached_s, pickled_s = statistics.median(cached), statistics.median(pickled)
    print(f"warm load, full MNIST as JAX arrays ({repeats} alternating runs, median):")
    print(f"  seewhy cache (mmap, checksummed): {cached_s * 1e3:8.2f} ms")
    print(f"  pickle of ImageClassification:    {pickled_s * 1e3:8.2f} ms")
    print(f"  speed-up: {pickled_s / cached_s:.1f}x (goal >= 1.5x)")

    # The cache hands JAX mapped pages, so also time a first full pass over the pixels.
    touch_cached = median_seconds(lambda: load_cached().X.sum(), repeats)
    touch_pickled = median_seconds(lambda: load_pickle().X.sum(), repeats)
    print(f"  load + sum of all pixels: cache {touch_cached * 1e3:.2f} ms, pickle {touch_pickled * 1e3:.2f} ms")


def bench_cold(work: Path, subset: int) -> None:
    import datasets as hf_datasets

    full = load_supervised_image("mnist", cache_dir=work / "warm-cache")
    X, y = np.asarray(full.X), np.asarray(full.y)
    X_test, y_test = np.asarray(full.X_test), np.asarray(full.y_test)

    for count in (subset, len(y)):
        export = work / f"parquet-{count}"
        write_parquet_export(export / "mnist", X[:count], y[:count], "train")
        write_parquet_export(export / "mnist", X_test[:1000], y_test[:1000], "test")

    start = time.perf_counter()
    ours = load_supervised_image("mnist", data_dir=work / f"parquet-{subset}", cache_dir=work / "cold-subset")
    ours_subset_s = time.perf_counter() - start

    start = time.perf_counter()
    formatted = hf_datasets.load_dataset(
        "parquet",
        data_files={"train": str(work / f"parquet-{subset}" / "mnist" / "train-00000-of-00001.parquet")},
        cache_dir=str(work / "hf-cache"),
    )["train"]
    # The parquet files written here carry no feature metadata, so declare the image column.
    formatted = formatted.cast_column("image", hf_datasets.Image()).with_format("jax")
    baseline = jax.block_until_ready(formatted["image"][:])
    baseline_s = time.perf_counter() - start
    assert np.array_equal(np.asarray(baseline).reshape(ours.X.shape), np.asarray(ours.X))

    start = time.perf_counter()
    load_supervised_image("mnist", data_dir=work / f"parquet-{len(y)}", cache_dir=work / "cold-full")
    ours_full_s = time.perf_counter() - start

    print(f"cold load from a parquet export, first {subset} training images:")
    print(f"  seewhy (decode, cache, map):       {ours_subset_s:8.2f} s")
    print(f"  datasets with_format('jax')[:]:    {baseline_s:8.2f} s")
    print(f"  speed-up: {baseline_s / ours_subset_s:.0f}x (goal >= 20x)")
    print(f"cold load from a parquet export, all {len(y)} training images: {ours_full_s:.2f} s (goal < 5 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21, help="alternating repetitions of the warm loads")
    parser.add_argument("--subset", type=int, default=4000, help="training images in the cold comparison")
    args = parser.parse_args()
    if not os.environ.get("SEEWHY_DATA_DIR"):
        parser.error("set SEEWHY_DATA_DIR to a folder containing mnist/ with the four IDX files")

    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as work:
        bench_warm(Path(work), args.repeats)
        bench_cold(Path(work), args.subset)


if __name__ == "__main__":
    main()
