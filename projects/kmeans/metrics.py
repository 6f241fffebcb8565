"""External clustering scores from the contingency table: purity, NMI and adjusted Rand index.

All scores take two label arrays of the same length, with any integer values. They are computed in
NumPy with float64 sums, so they agree with scikit-learn's `normalized_mutual_info_score` (arithmetic
normalisation, its default) and `adjusted_rand_score` to rounding error.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "ClusterScores",
    "adjusted_rand_index",
    "cluster_label_counts",
    "cluster_scores",
    "contingency_table",
    "normalized_mutual_information",
    "purity",
    "table_scores",
]


class ClusterScores(NamedTuple):
    """Scores of a clustering against reference labels."""

    purity: float
    nmi: float
    ari: float


def contingency_table(clusters: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return counts[i, j] = number of points in the i-th distinct cluster with the j-th distinct label.

    Rows and columns follow the sorted distinct values of `clusters` and `labels`. Values that never
    occur get no row or column.
    """
    clusters = np.asarray(clusters).ravel()
    labels = np.asarray(labels).ravel()
    if clusters.shape != labels.shape:
        raise ValueError(f"clusters and labels must have the same length, got {clusters.size} and {labels.size}")
    _, cluster_index = np.unique(clusters, return_inverse=True)
    _, label_index = np.unique(labels, return_inverse=True)
    rows = cluster_index.max(initial=-1) + 1
    columns = label_index.max(initial=-1) + 1
    flat = np.bincount(cluster_index * columns + label_index, minlength=rows * columns)
    return flat.reshape(rows, columns).astype(np.int64)


def cluster_label_counts(clusters: np.ndarray, labels: np.ndarray, num_clusters: int, num_labels: int) -> np.ndarray:
    """Return counts[i, j] (num_clusters, num_labels) of points in cluster i with label j, empty rows kept.

    Both arrays hold integers from 0 to num_clusters - 1 and num_labels - 1.
    """
    clusters = np.asarray(clusters, np.int64).ravel()
    labels = np.asarray(labels, np.int64).ravel()
    flat = np.bincount(clusters * num_labels + labels, minlength=num_clusters * num_labels)
    return flat.reshape(num_clusters, num_labels)


def _drop_empty(table: np.ndarray) -> np.ndarray:
    """Remove all-zero rows and columns, which a table with a fixed shape can contain."""
    return table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]


def purity(table: np.ndarray) -> float:
    """Fraction of points whose label is the majority label of their cluster; 1.0 for no points."""
    total = table.sum()
    return float(table.max(axis=1).sum() / total) if total else 1.0


def _entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def normalized_mutual_information(table: np.ndarray) -> float:
    """Mutual information divided by the arithmetic mean of the two entropies (natural logarithm).

    Two labelings that both put every point into one group score 1.0. When only one of them does,
    the mutual information is 0, and so is the score.
    """
    table = _drop_empty(table)
    total = table.sum()
    rows, columns = table.shape
    if rows == columns and rows <= 1:
        return 1.0
    cluster_sizes = table.sum(axis=1).astype(np.float64)
    label_sizes = table.sum(axis=0).astype(np.float64)
    i, j = np.nonzero(table)
    joint = table[i, j].astype(np.float64)
    mutual_information = np.sum(joint / total * np.log(joint * total / (cluster_sizes[i] * label_sizes[j])))
    mutual_information = max(float(mutual_information), 0.0)  # rounding can leave a tiny negative value
    if mutual_information == 0.0:
        return 0.0
    mean_entropy = (_entropy(cluster_sizes) + _entropy(label_sizes)) / 2
    return mutual_information / mean_entropy


def _pairs(counts: np.ndarray) -> float:
    counts = counts.astype(np.float64)
    return float(np.sum(counts * (counts - 1) / 2))


def adjusted_rand_index(table: np.ndarray) -> float:
    """Rand index of pairs corrected for chance (Hubert and Arabie, 1985).

    When the expected and the maximum index coincide, both labelings are one group each or all
    singletons each, and the score is 1.0.
    """
    total = table.sum()
    pairs_total = total * (total - 1) / 2
    pairs_joint = _pairs(table)
    pairs_clusters = _pairs(table.sum(axis=1))
    pairs_labels = _pairs(table.sum(axis=0))
    expected = pairs_clusters * pairs_labels / pairs_total if pairs_total else 0.0
    maximum = (pairs_clusters + pairs_labels) / 2
    if maximum == expected:
        return 1.0
    return float((pairs_joint - expected) / (maximum - expected))


def table_scores(table: np.ndarray) -> ClusterScores:
    """Return purity, NMI and ARI from a cluster-by-label count table."""
    return ClusterScores(purity(table), normalized_mutual_information(table), adjusted_rand_index(table))


def cluster_scores(clusters: np.ndarray, labels: np.ndarray) -> ClusterScores:
    """Return purity, NMI and ARI of `clusters` against the reference `labels`."""
    return table_scores(contingency_table(clusters, labels))
