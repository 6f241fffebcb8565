"""Benchmark the compiled JAX Lloyd loop against scikit-learn's k-means on MNIST.

    flock /tmp/seewhy-bench.lock uv run python projects/kmeans/bench.py --repeats 5

Every implementation clusters the same float32 matrix (all 60,000 MNIST training images, pixels
scaled to [0, 1]) from the same k-means++ centres. Each runs until no point changes cluster (tol=0
everywhere), so the iteration counts and final inertias are comparable. Repetitions alternate
between the implementations so that load from other processes hits all of them alike.

Besides scikit-learn's "lloyd" and "elkan" and this project's loop, the table times the loop with
each speed-up removed in turn, down to a jitted whole-array step dispatched from Python once per
iteration, to show what each one contributes. Takes about a minute on 2 CPU cores and prints a
Markdown table. scikit-learn is a development dependency, so run this with the dev group installed
(`uv sync`).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import field

import jax
import jax.numpy as jnp
import numpy as np
import sklearn
from sklearn.cluster import KMeans

from projects.kmeans.data import load_clustering_data
from projects.kmeans.lloyd import DEFAULT_CHUNK_ROWS, KMeansFit, lloyd, lloyd_step
from projects.kmeans.metrics import cluster_scores
from projects.kmeans.seeding import seed_centres
from shared_lib.experiment import PhaseTimer, package_versions, parse_config


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Benchmark settings."""

    dataset: str = field(default="mnist", metadata={"help": "dataset to cluster"})
    n_train: int | None = field(default=None, metadata={"help": "number of training images; all when not given"})
    k: int = field(default=10, metadata={"help": "number of clusters"})
    max_iter: int = field(default=300, metadata={"help": "maximum iterations for every implementation"})
    repeats: int = field(default=3, metadata={"help": "timed runs per implementation, alternating"})
    seed: int = field(default=0, metadata={"help": "seed of the shared k-means++ centres"})

    def __post_init__(self) -> None:
        for name in ("k", "max_iter", "repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")


def run_sklearn(points: np.ndarray, initial: np.ndarray, max_iter: int, algorithm: str = "lloyd"):
    """Fit scikit-learn's k-means and return (seconds, iterations, inertia, labels)."""
    model = KMeans(len(initial), init=initial, n_init=1, algorithm=algorithm, tol=0.0, max_iter=max_iter)
    start = time.perf_counter()
    model.fit(points)
    seconds = time.perf_counter() - start
    return seconds, int(model.n_iter_), float(model.inertia_), model.labels_


def run_jax(points: jax.Array, initial: jax.Array, max_iter: int, chunk_rows: int, *, incremental: bool, skip: bool):
    """Run the compiled loop and return (seconds, iterations, inertia, labels), without compile time."""
    timer = PhaseTimer()
    fit: KMeansFit = lloyd(
        points,
        initial,
        max_iter=max_iter,
        tol=0.0,
        chunk_rows=chunk_rows,
        incremental=incremental,
        skip_safe_points=skip,
        timer=timer,
    )
    return timer.seconds["fit"], fit.iterations, fit.inertia, fit.labels


def run_dispatched(points: jax.Array, initial: jax.Array, max_iter: int):
    """Call a jitted whole-array step once per iteration and test convergence in Python."""
    n = points.shape[0]
    step = jax.jit(lloyd_step, static_argnames="chunk_rows")
    jax.block_until_ready(step(points, initial, chunk_rows=n))  # compile before the clock starts
    centres, previous, iterations = initial, None, 0
    start = time.perf_counter()
    while iterations < max_iter:
        new_centres, cluster_pass, _ = step(points, centres, chunk_rows=n)
        labels = np.asarray(cluster_pass.labels)
        iterations += 1
        if previous is not None and np.array_equal(labels, previous):
            break
        centres, previous = new_centres, labels
    seconds = time.perf_counter() - start
    return seconds, iterations, float(cluster_pass.inertia), labels


def main() -> None:
    config = parse_config(BenchConfig, description=__doc__)
    data = load_clustering_data(config.dataset, config.n_train)
    points = jax.block_until_ready(data.points)
    points_np = np.ascontiguousarray(np.asarray(points))
    initial = seed_centres(points, jax.random.key(config.seed), config.k)
    initial_np = np.asarray(initial)
    n = points.shape[0]

    chunk = DEFAULT_CHUNK_ROWS
    implementations = {
        "scikit-learn KMeans(algorithm='lloyd')": lambda: run_sklearn(points_np, initial_np, config.max_iter),
        "scikit-learn KMeans(algorithm='elkan')": lambda: run_sklearn(points_np, initial_np, config.max_iter, "elkan"),
        f"JAX while_loop, {chunk}-row chunks, incremental sums, skipping safe points (this project)": lambda: run_jax(
            points, initial, config.max_iter, chunk, incremental=True, skip=True
        ),
        f"JAX while_loop, {chunk}-row chunks, incremental sums": lambda: run_jax(
            points, initial, config.max_iter, chunk, incremental=True, skip=False
        ),
        f"JAX while_loop, {chunk}-row chunks": lambda: run_jax(
            points, initial, config.max_iter, chunk, incremental=False, skip=False
        ),
        "JAX while_loop, whole-array passes": lambda: run_jax(
            points, initial, config.max_iter, n, incremental=False, skip=False
        ),
        "JAX jitted step dispatched per iteration": lambda: run_dispatched(points, initial, config.max_iter),
    }
    results = {name: [] for name in implementations}
    for repeat in range(config.repeats + 1):  # the first round warms up caches and compiles
        for name, implementation in implementations.items():
            outcome = implementation()
            if repeat > 0:
                results[name].append(outcome)

    reference = "scikit-learn KMeans(algorithm='lloyd')"
    reference_ms = statistics.median(1e3 * s / it for s, it, _, _ in results[reference])
    reference_inertia = results[reference][-1][2]
    print(f"{config.dataset}, n={n}, d={points.shape[1]}, k={config.k}, float32 pixels in [0, 1], tol=0")
    print(f"versions: {package_versions()}, scikit-learn {sklearn.__version__}")
    print()
    print("| implementation | ms per iteration (median, min-max) | speed-up | iterations | final inertia | vs scikit-learn | purity |")
    print("|---|---|---|---|---|---|---|")
    for name, outcomes in results.items():
        per_iteration = [1e3 * s / it for s, it, _, _ in outcomes]
        _, iterations, inertia, labels = outcomes[-1]
        median = statistics.median(per_iteration)
        scores = cluster_scores(labels, data.labels)
        print(
            f"| {name} | {median:.1f} ({min(per_iteration):.1f}-{max(per_iteration):.1f}) | "
            f"{reference_ms / median:.2f}x | {iterations} | {inertia:,.1f} | "
            f"{100 * (inertia / reference_inertia - 1):+.4f}% | {scores.purity:.4f} |"
        )


if __name__ == "__main__":
    main()
