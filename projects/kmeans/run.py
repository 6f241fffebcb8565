"""One k-means experiment from a config: data, seeding, fit, scores, figures and metrics.json."""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import jax
import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

from projects.kmeans import plots
from projects.kmeans.config import KMeansConfig, OptionError
from projects.kmeans.data import ClusteringData, load_clustering_data
from projects.kmeans.lloyd import KMeansFit, assign, lloyd
from projects.kmeans.metrics import cluster_label_counts, table_scores
from projects.kmeans.minibatch import minibatch_kmeans
from projects.kmeans.seeding import default_trials, seed_centres
from shared_lib.experiment import PhaseTimer, capture_run_log, new_run_id, package_versions
from shared_lib.media import save_animation, save_matplotlib_figure, save_media
from shared_lib.random_utils import infinite_safe_keys

__all__ = ["KMeansRun", "run"]

logger = logging.getLogger(__name__)

EXAMPLES_PER_CLUSTER = 8
# The examples figure draws one row per cluster, so it shows only the largest clusters beyond this.
MAX_EXAMPLE_ROWS = 20
FIGURE_DPI = 150
# The animation plays for about this long, at 2 to 15 frames per second, and then shows the last
# frame for HOLD_SECONDS.
ANIMATION_SECONDS = 8.0
HOLD_SECONDS = 1.5


class IterationScores(NamedTuple):
    """Scores of each iteration's assignment, (iterations,) float64 each, and its majority labels."""

    purity: np.ndarray
    nmi: np.ndarray
    ari: np.ndarray
    majority_labels: np.ndarray  # (iterations, k) majority label of each cluster


class KMeansRun(NamedTuple):
    """Everything a run computed, as NumPy arrays and plain values, for redrawing in a notebook."""

    run_id: str
    config: KMeansConfig
    image_shape: tuple[int, int, int]  # (C, H, W)
    class_names: tuple[str, ...]
    centres: np.ndarray  # (k, C*H*W) float32, pixel values in [0, 1]
    clusters: np.ndarray  # (n,) cluster of each image
    labels: np.ndarray  # (n,) true label of each image
    iterations: int
    converged: bool
    centre_history: np.ndarray  # (iterations, k, C*H*W)
    inertia: np.ndarray  # (iterations,)
    scores: IterationScores
    reseeds: np.ndarray  # (iterations,) clusters re-seeded after each iteration
    counts: np.ndarray  # (k, classes) images per cluster and label, last iteration
    majority_labels: np.ndarray  # (k,)
    examples: np.ndarray  # (k, EXAMPLES_PER_CLUSTER, C, H, W) uint8 member images
    example_labels: np.ndarray  # (k, EXAMPLES_PER_CLUSTER) their labels, -1 where a cluster has fewer members
    seconds: dict[str, float]
    artifacts: dict[str, str]  # artifact name -> URL or local path


def _fit(config: KMeansConfig, points: jax.Array, centres: jax.Array, key: jax.Array, timer: PhaseTimer) -> KMeansFit:
    """Run the configured algorithm with a progress bar, recording the centres of every iteration."""
    bar = tqdm(total=config.max_iter, desc=config.algorithm, unit="it", disable=config.quiet or None, leave=False)

    def show_progress(iteration: int, inertia: float) -> None:
        bar.update(1)
        bar.set_postfix(inertia=f"{inertia:.4g}", refresh=False)

    # NOTE: the recorded centres take max_iter * k * d * 4 bytes up front, 9 MB for the MNIST defaults
    # but 1.2 GB for k = 100 on CIFAR-10 with max_iter = 1000.
    with bar:
        common = dict(max_iter=config.max_iter, tol=config.tol, record_centres=True, on_iteration=show_progress)
        if config.algorithm == "lloyd":
            return lloyd(points, centres, timer=timer, **common)
        return minibatch_kmeans(points, centres, key, batch_size=config.batch_size, timer=timer, **common)


def _score_iterations(points: jax.Array, labels: np.ndarray, centre_history: np.ndarray, num_classes: int):
    """Assign the points to each iteration's centres and score that assignment against the labels."""
    k = centre_history.shape[1]
    purity, nmi, ari, majority_labels = [], [], [], []
    for centres in centre_history:
        clusters = np.asarray(assign(points, centres).labels)
        counts = cluster_label_counts(clusters, labels, k, num_classes)
        scores = table_scores(counts)
        purity.append(scores.purity)
        nmi.append(scores.nmi)
        ari.append(scores.ari)
        majority_labels.append(counts.argmax(axis=1))
    return IterationScores(np.array(purity), np.array(nmi), np.array(ari), np.array(majority_labels))


def _pick_examples(images: np.ndarray, labels: np.ndarray, clusters: np.ndarray, k: int, rng: np.random.Generator):
    """Draw up to EXAMPLES_PER_CLUSTER member images of each cluster without replacement."""
    examples = np.zeros((k, EXAMPLES_PER_CLUSTER, *images.shape[1:]), np.uint8)
    example_labels = np.full((k, EXAMPLES_PER_CLUSTER), -1, np.int64)
    for cluster in range(k):
        members = np.flatnonzero(clusters == cluster)
        chosen = rng.choice(members, size=min(EXAMPLES_PER_CLUSTER, len(members)), replace=False)
        examples[cluster, : len(chosen)] = images[chosen]
        example_labels[cluster, : len(chosen)] = labels[chosen]
    return examples, example_labels


def _save_figures(result: KMeansRun) -> dict[str, str]:
    """Draw and save the four figures and the animation, and return artifact name -> location."""
    config = result.config
    sizes = result.counts.sum(axis=1)
    title = (
        f"{config.dataset}, k={config.k}, {config.algorithm}, n={len(result.labels)}: "
        f"{result.iterations} iterations, purity {result.scores.purity[-1]:.3f}, NMI {result.scores.nmi[-1]:.3f}"
    )
    artifacts = {}

    figures = {
        "centroids.png": plots.centroid_figure(
            result.centres, result.image_shape, result.majority_labels, sizes, result.class_names, title
        ),
        "metrics.png": plots.metrics_figure(
            result.inertia,
            result.scores.purity,
            result.scores.nmi,
            result.scores.ari,
            result.reseeds,
            config.tol,
            title,
        ),
        "confusion.png": plots.confusion_figure(result.counts, result.majority_labels, result.class_names, title),
    }
    example_clusters = np.sort(np.argsort(-sizes, kind="stable")[:MAX_EXAMPLE_ROWS])
    if len(example_clusters) < config.k:
        logger.info("The examples figure shows the %d largest of %d clusters", len(example_clusters), config.k)
    figures["examples.png"] = plots.examples_figure(
        result.centres[example_clusters],
        result.examples[example_clusters],
        result.example_labels[example_clusters],
        result.majority_labels[example_clusters],
        sizes[example_clusters],
        result.class_names,
        title,
    )
    for name, figure in figures.items():
        artifacts[name] = save_matplotlib_figure(f"{result.run_id}/{name}", figure, dpi=FIGURE_DPI)
        plt.close(figure)

    artifacts["centroids.mp4"] = _save_animation(result)
    return artifacts


def animation_captions(majority_history: np.ndarray, order: np.ndarray, class_names: tuple[str, ...]) -> list[list[str]]:
    """Return captions[iteration][i] "cluster → majority label" of cluster order[i] in that iteration's assignment."""
    return [[f"{cluster} → {class_names[majority[cluster]]}" for cluster in order] for majority in majority_history]


def _save_animation(result: KMeansRun) -> str:
    order = plots.cluster_order(result.majority_labels, result.counts.sum(axis=1))
    iterations = len(result.inertia)
    fps = float(np.clip(iterations / ANIMATION_SECONDS, 2, 15))
    captions = animation_captions(result.scores.majority_labels, order, result.class_names)
    frames = plots.centroid_frames(result.centre_history, result.image_shape, result.inertia, order, captions)

    def with_hold():
        frame = None
        bar = tqdm(frames, total=iterations, desc="animation", unit="frame", disable=result.config.quiet or None)
        for frame in bar:
            yield frame
        for _ in range(round(HOLD_SECONDS * fps)):
            yield frame

    return save_animation(f"{result.run_id}/centroids.mp4", with_hold(), fps=fps)


def _metrics_document(result: KMeansRun, num_points: int, dimension: int, timer: PhaseTimer) -> dict:
    seconds = dict(timer.seconds)
    return {
        "run_id": result.run_id,
        "config": dataclasses.asdict(result.config),
        "versions": package_versions(),
        "data": {"dataset": result.config.dataset, "points": num_points, "dimension": dimension, "pixel_scale": "[0, 1]"},
        "init_trials": result.config.init_trials or default_trials(result.config.k),
        "iterations": result.iterations,
        "converged": result.converged,
        "empty_cluster_reseeds": int(result.reseeds.sum()),
        "final": {
            "inertia": float(result.inertia[-1]),
            "purity": float(result.scores.purity[-1]),
            "nmi": float(result.scores.nmi[-1]),
            "ari": float(result.scores.ari[-1]),
        },
        "per_iteration": {
            "inertia": result.inertia.tolist(),
            "purity": result.scores.purity.tolist(),
            "nmi": result.scores.nmi.tolist(),
            "ari": result.scores.ari.tolist(),
            "empty_cluster_reseeds": result.reseeds.tolist(),
        },
        "class_names": list(result.class_names),
        "cluster_sizes": result.counts.sum(axis=1).tolist(),
        # cluster_label_counts[i][j]: images in cluster i with label j, as confusion.png shows them.
        "cluster_label_counts": result.counts.tolist(),
        "majority_labels": result.majority_labels.tolist(),
        # Labels of the images in examples.png, one row per cluster, -1 where a cluster has fewer members.
        "example_labels": result.example_labels.tolist(),
        "seconds": {**seconds, "total": timer.total, "fit_per_iteration": seconds["fit"] / result.iterations},
        "artifacts": result.artifacts,
    }


def run(config: KMeansConfig) -> KMeansRun:
    """Cluster the training images as `config` specifies, save figures, metrics.json and run.log, and return the results.

    run.log contains the INFO records of projects.kmeans and shared_lib during the run. It is saved
    last, so metrics.json does not list it.

    Raises:
        OptionError: --n-train or --k exceeds the number of images; the message gives the allowed range.
        ValueError: k exceeds the number of distinct images; the message gives both numbers.
    """
    run_id = new_run_id("kmeans")
    with tempfile.TemporaryDirectory(prefix="seewhy-kmeans-") as temp_dir:
        log_path = Path(temp_dir) / "run.log"
        with capture_run_log(log_path, ["projects.kmeans", "shared_lib"]):
            result = _run(config, run_id)
        log_location = save_media(f"{run_id}/run.log", log_path, "text/plain")
    return result._replace(artifacts={**result.artifacts, "run.log": log_location})


def _run(config: KMeansConfig, run_id: str) -> KMeansRun:
    timer = PhaseTimer()
    keys = infinite_safe_keys(config.seed)
    key_init, key_batches, key_examples = next(keys).split(3)
    logger.info("Run %s: %s", run_id, config)

    with timer.phase("load"):
        data = load_clustering_data(config.dataset, config.n_train)
    num_points, dimension = data.points.shape
    if config.k > num_points:
        raise OptionError(f"--k must be from 1 to the number of images ({num_points}), got {config.k}")
    logger.info("Loaded %d %s images of dimension %d", num_points, config.dataset, dimension)

    with timer.phase("init"):
        initial_centres = seed_centres(data.points, key_init.get(), config.k, config.init_trials)
    fit = _fit(config, data.points, initial_centres, key_batches.get(), timer)
    logger.info(
        "%s stopped after %d iterations (%s) at inertia %.6g, %.2f ms per iteration, %d empty-cluster re-seeds",
        config.algorithm, fit.iterations, "converged" if fit.converged else "max-iter reached", fit.inertia,
        1e3 * timer.seconds["fit"] / fit.iterations, int(fit.reseed_history.sum()),
    )  # fmt: skip

    with timer.phase("evaluate"):
        scores = _score_iterations(data.points, data.labels, fit.centre_history, len(data.class_names))
        counts = cluster_label_counts(fit.labels, data.labels, config.k, len(data.class_names))
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key_examples.get())))
        examples, example_labels = _pick_examples(data.images, data.labels, fit.labels, config.k, rng)

    result = KMeansRun(
        run_id=run_id,
        config=config,
        image_shape=tuple(data.images.shape[1:]),
        class_names=data.class_names,
        centres=fit.centres,
        clusters=fit.labels,
        labels=data.labels,
        iterations=fit.iterations,
        converged=fit.converged,
        centre_history=fit.centre_history,
        inertia=fit.inertia_history,
        scores=scores,
        reseeds=fit.reseed_history,
        counts=counts,
        majority_labels=counts.argmax(axis=1),
        examples=examples,
        example_labels=example_labels,
        seconds={},
        artifacts={},
    )
    with timer.phase("figures"):
        result = result._replace(artifacts=_save_figures(result))

    document = _metrics_document(result, num_points, dimension, timer)
    metrics_location = save_media(f"{run_id}/metrics.json", json.dumps(document, indent=2).encode())
    logger.info(
        "Final purity %.3f, NMI %.3f, ARI %.3f; timings in seconds: %s",
        result.scores.purity[-1], result.scores.nmi[-1], result.scores.ari[-1],
        {name: round(seconds, 2) for name, seconds in timer.seconds.items()},
    )  # fmt: skip
    return result._replace(seconds=dict(timer.seconds), artifacts={**result.artifacts, "metrics.json": metrics_location})
