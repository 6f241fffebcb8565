"""Figures and animation frames of a k-means run: centroids, inertia, confusion matrix and examples.

Every function takes plain NumPy data (the fields of `KMeansRun`), so a notebook can redraw a run
without running it again. Clusters appear in `cluster_order`: sorted by majority label, then by size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import matplotlib

matplotlib.use("Agg")  # the run only writes files, so no display is needed

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "centroid_figure",
    "centroid_frames",
    "cluster_order",
    "confusion_figure",
    "examples_figure",
    "metrics_figure",
]

_GRID_COLUMNS = 10
RED_LABEL_NOTE = "labels in red: true label differs from the majority label of the cluster"


def cluster_order(majority_labels: np.ndarray, cluster_sizes: np.ndarray) -> np.ndarray:
    """Return cluster indices sorted by majority label, and within one label by decreasing size."""
    return np.lexsort((-cluster_sizes, majority_labels))


def _to_display(image: np.ndarray) -> np.ndarray:
    """Turn a (C, H, W) image with values in [0, 1] into (H, W) or (H, W, 3) for imshow."""
    image = np.clip(image, 0.0, 1.0)
    return image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))


def _grid_axes(
    count: int, cell_inches: float, title_inches: float, header_inches: float = 0.5
) -> tuple[Figure, np.ndarray]:
    """Make a grid of `count` image axes, at most _GRID_COLUMNS wide, with room for each axes' title."""
    columns = min(count, _GRID_COLUMNS)
    rows = -(-count // columns)
    height = rows * (cell_inches + title_inches) + header_inches
    fig, axes = plt.subplots(rows, columns, figsize=(columns * cell_inches, height), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def centroid_figure(
    centres: np.ndarray,
    image_shape: Sequence[int],
    majority_labels: np.ndarray,
    cluster_sizes: np.ndarray,
    class_names: Sequence[str],
    title: str,
) -> Figure:
    """Draw each centre (k, C*H*W) as an image titled with its majority label and cluster size."""
    order = cluster_order(majority_labels, cluster_sizes)
    fig, axes = _grid_axes(len(order), cell_inches=1.3, title_inches=0.35)
    for ax, cluster in zip(axes.flat, order):
        ax.imshow(_to_display(centres[cluster].reshape(image_shape)), cmap="gray", vmin=0, vmax=1)
        ax.set_title(
            f"cluster {cluster} → {class_names[majority_labels[cluster]]}\nn={cluster_sizes[cluster]:,}", fontsize=7
        )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def centroid_frames(
    centre_history: np.ndarray,
    image_shape: Sequence[int],
    inertia_history: np.ndarray,
    order: np.ndarray,
    captions: Sequence[Sequence[str]],
    dpi: int = 150,
) -> Iterator[np.ndarray]:
    """Yield one RGB frame (H, W, 3) uint8 per iteration, showing the centres in `order`.

    `captions[iteration]` label the centres (in `order`) in that frame, for example with the majority
    labels of that iteration's assignment.

    One figure is drawn once and only its image data and titles change between frames, which keeps
    rendering at a few milliseconds per frame.
    """
    fig, axes = _grid_axes(len(order), cell_inches=1.0, title_inches=0.15)
    fig.set_dpi(dpi)
    images, caption_texts = [], []
    for ax, cluster, caption in zip(axes.flat, order, captions[0]):
        first = _to_display(centre_history[0, cluster].reshape(image_shape))
        images.append(ax.imshow(first, cmap="gray", vmin=0, vmax=1))
        caption_texts.append(ax.set_title(caption, fontsize=6))
    title = fig.suptitle("", fontsize=9)
    fig.tight_layout()
    try:
        for iteration, centres in enumerate(centre_history):
            for image, cluster in zip(images, order):
                image.set_data(_to_display(centres[cluster].reshape(image_shape)))
            for text, caption in zip(caption_texts, captions[iteration]):
                text.set_text(caption)
            title.set_text(f"iteration {iteration}   inertia {inertia_history[iteration]:,.0f}")
            fig.canvas.draw()
            yield np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    finally:
        plt.close(fig)


def metrics_figure(
    inertia: np.ndarray,
    purity: np.ndarray,
    nmi: np.ndarray,
    ari: np.ndarray,
    reseeds: np.ndarray,
    tol: float,
    title: str,
) -> Figure:
    """Plot inertia, its relative change and the scores against the labels per iteration.

    Iterations that re-seeded an empty cluster get a red vertical line in every panel.
    """
    iterations = np.arange(len(inertia))
    fig, (ax_inertia, ax_change, ax_scores) = plt.subplots(1, 3, figsize=(13, 3.8))

    ax_inertia.plot(iterations, inertia, marker=".", color="tab:blue")
    ax_inertia.set_ylabel("inertia (sum of squared distances)")
    ax_inertia.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))

    # Relative change from the previous iteration, the quantity that the --tol stopping rule tests.
    change = np.abs(np.diff(inertia)) / np.maximum(inertia[:-1], np.finfo(np.float64).tiny)
    ax_change.semilogy(iterations[1:], np.maximum(change, 1e-12), marker=".", color="tab:purple")
    if tol > 0:
        ax_change.axhline(tol, color="gray", linestyle="--", linewidth=1, label=f"tol = {tol:g}")
        ax_change.legend(fontsize=8)
    ax_change.set_ylabel("relative change in inertia")

    for values, name in ((purity, "purity"), (nmi, "NMI"), (ari, "ARI")):
        ax_scores.plot(iterations, values, marker=".", label=f"{name} (final {values[-1]:.3f})")
    ax_scores.set_ylabel("score against the labels")
    ax_scores.set_ylim(0, 1)
    ax_scores.legend(fontsize=8)

    for ax in (ax_inertia, ax_change, ax_scores):
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        for iteration in np.flatnonzero(reseeds):
            ax.axvline(iteration, color="tab:red", alpha=0.4, linewidth=1)
    if reseeds.any():
        ax_inertia.plot([], [], color="tab:red", alpha=0.4, label="empty cluster re-seeded after")
        ax_inertia.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def confusion_figure(table: np.ndarray, majority_labels: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """Draw the cluster-by-label count table (k, classes), rows coloured by the fraction of the cluster."""
    sizes = table.sum(axis=1)
    order = cluster_order(majority_labels, sizes)
    rows = table[order]
    fractions = rows / np.maximum(rows.sum(axis=1, keepdims=True), 1)
    k, num_classes = rows.shape

    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * num_classes, 1.2 + 0.4 * k))
    mesh = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(k):
        for j in range(num_classes):
            if rows[i, j]:
                color = "white" if fractions[i, j] > 0.6 else "black"
                ax.text(j, i, str(rows[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(num_classes), [str(name) for name in class_names], fontsize=8)
    ax.set_yticks(range(k), [f"{cluster} → {class_names[majority_labels[cluster]]}" for cluster in order], fontsize=8)
    ax.set_xlabel("true label")
    ax.set_ylabel("cluster → majority label")
    fig.colorbar(mesh, ax=ax, label="fraction of the cluster")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def examples_figure(
    centres: np.ndarray,
    examples: np.ndarray,
    example_labels: np.ndarray,
    majority_labels: np.ndarray,
    cluster_sizes: np.ndarray,
    class_names: Sequence[str],
    title: str,
) -> Figure:
    """Draw one row per cluster: its centre, then example members (k, m, C, H, W) uint8.

    Each example is titled with its true label, in red when it differs from the majority label, and
    the second line of the figure title explains the red. Rows of clusters with fewer than m points leave the remaining
    cells blank (label -1).
    """
    order = cluster_order(majority_labels, cluster_sizes)
    k, per_cluster = examples.shape[:2]
    image_shape = examples.shape[2:]
    height = 0.95 * k + 0.7
    fig, axes = plt.subplots(k, per_cluster + 1, figsize=(0.9 * (per_cluster + 1), height), squeeze=False)
    for row, cluster in zip(axes, order):
        for ax in row:
            ax.set_axis_off()
        row[0].imshow(_to_display(centres[cluster].reshape(image_shape)), cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"cluster {cluster} centre", fontsize=6, color="tab:blue")
        for ax, image, label in zip(row[1:], examples[cluster], example_labels[cluster]):
            if label < 0:
                continue
            ax.imshow(_to_display(image / 255.0), cmap="gray", vmin=0, vmax=1)
            wrong = label != majority_labels[cluster]
            ax.set_title(str(class_names[label]), fontsize=6, color="tab:red" if wrong else "black")
    fig.suptitle(f"{title}\n{RED_LABEL_NOTE}", fontsize=10)
    fig.tight_layout()  # leaves room for the two-line title
    return fig
