"""Tests of the k-means experiment: Lloyd against NumPy, k-means++, empty clusters, scores, CLI and a smoke run.

Run with `uv run pytest test-scripts/test_kmeans.py` or `uv run python test-scripts/test_kmeans.py`.
The smoke runs need MNIST in `SEEWHY_DATA_DIR` and are skipped without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from projects.kmeans.bounds import exact_bounds, half_gap, loosen_bounds
from projects.kmeans.config import KMeansConfig
from projects.kmeans.lloyd import _lloyd_loop, assign, lloyd, lloyd_step
from projects.kmeans.metrics import (
    adjusted_rand_index,
    cluster_label_counts,
    cluster_scores,
    contingency_table,
    normalized_mutual_information,
    purity,
)
from projects.kmeans.minibatch import minibatch_kmeans, minibatch_step
from projects.kmeans.plots import RED_LABEL_NOTE, centroid_frames, examples_figure
from projects.kmeans.run import _score_iterations, animation_captions
from projects.kmeans.seeding import count_distinct_rows, kmeans_plus_plus, seed_centres
from shared_lib.datasets import load_supervised_image

REPOSITORY = Path(__file__).resolve().parent.parent
TRAIN_SCRIPT = REPOSITORY / "projects" / "kmeans" / "train.py"


def make_blobs(n: int, k: int, d: int, seed: int, spread: float = 10.0, noise: float = 1.0):
    """Return points (n, d) float32 drawn around k random centres, and each point's blob index."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(k, d))
    blob = rng.integers(0, k, size=n)
    points = centres[blob] + rng.normal(scale=noise, size=(n, d))
    return points.astype(np.float32), blob


def numpy_lloyd_step(points: np.ndarray, centres: np.ndarray):
    """One Lloyd iteration written as plain loops in float64: (new centres, labels, inertia)."""
    points = points.astype(np.float64)
    k = len(centres)
    labels = np.empty(len(points), np.int64)
    inertia = 0.0
    for i, point in enumerate(points):
        distances = [np.sum((point - centre) ** 2) for centre in centres]
        labels[i] = int(np.argmin(distances))
        inertia += distances[labels[i]]
    new_centres = np.array(centres, np.float64)
    for cluster in range(k):
        members = points[labels == cluster]
        if len(members):
            new_centres[cluster] = members.mean(axis=0)
    return new_centres, labels, inertia


# ---------------------------------------------------------------------------------------------
# Lloyd


@pytest.mark.parametrize("chunk_rows", [64, 1000])
def test_lloyd_step_matches_numpy(chunk_rows):
    # 503 rows in chunks of 64 leave a padded last chunk.
    points, _ = make_blobs(503, 6, 7, seed=0)
    centres = points[np.random.default_rng(1).choice(len(points), 6, replace=False)]

    new_centres, cluster_pass, reseeded = lloyd_step(jnp.asarray(points), jnp.asarray(centres), chunk_rows=chunk_rows)
    expected_centres, expected_labels, expected_inertia = numpy_lloyd_step(points, centres)

    np.testing.assert_array_equal(np.asarray(cluster_pass.labels), expected_labels)
    np.testing.assert_allclose(np.asarray(new_centres), expected_centres, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(float(cluster_pass.inertia), expected_inertia, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(cluster_pass.counts), np.bincount(expected_labels, minlength=6))
    assert int(reseeded) == 0


def test_lloyd_fit_matches_numpy_loop():
    points, _ = make_blobs(400, 5, 4, seed=2, spread=3.0)
    initial = points[:5]

    fit = lloyd(jnp.asarray(points), jnp.asarray(initial), max_iter=100, tol=0.0, chunk_rows=128)

    centres, inertias, previous_labels = initial.astype(np.float64), [], None
    while True:
        new_centres, labels, inertia = numpy_lloyd_step(points, centres)
        inertias.append(inertia)
        if previous_labels is not None and np.array_equal(labels, previous_labels):
            break
        centres, previous_labels = new_centres, labels

    assert fit.converged
    assert fit.iterations == len(inertias)
    np.testing.assert_array_equal(fit.labels, labels)
    np.testing.assert_allclose(fit.centres, centres, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fit.inertia_history, inertias, rtol=1e-5)
    assert fit.inertia == pytest.approx(inertias[-1], rel=1e-5)


@pytest.mark.parametrize("incremental", [True, False])
def test_skipping_matches_plain_lloyd(incremental):
    # Overlapping blobs put many points near cluster borders, where the bounds matter.
    points, _ = make_blobs(3000, 12, 6, seed=20, spread=1.5)
    points = jnp.asarray(points)
    initial = seed_centres(points, jax.random.key(5), 12)
    plain = lloyd(points, initial, max_iter=300, tol=0.0, incremental=False, skip_safe_points=False)
    fast = lloyd(points, initial, max_iter=300, tol=0.0, incremental=incremental, skip_safe_points=True)

    assert plain.converged and fast.converged
    assert fast.iterations == plain.iterations
    np.testing.assert_array_equal(fast.labels, plain.labels)
    np.testing.assert_allclose(fast.centres, plain.centres, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.inertia_history, plain.inertia_history, rtol=1e-5)


def test_bounds_hold_after_centres_move():
    rng = np.random.default_rng(21)
    points = jnp.asarray(rng.normal(size=(500, 8)).astype(np.float32))
    centres = jnp.asarray(rng.normal(size=(6, 8)).astype(np.float32))
    moved = centres + jnp.asarray(rng.normal(scale=0.05, size=(6, 8)).astype(np.float32))

    def true_distances(centres):
        return np.sqrt(((np.asarray(points)[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1))  # (n, k)

    before = true_distances(centres)
    labels = jnp.asarray(before.argmin(axis=1))
    sorted_squared = np.sort(before**2, axis=1)
    upper, lower = exact_bounds(
        jnp.asarray(sorted_squared[:, 0]), jnp.asarray(sorted_squared[:, 1]), jnp.sum(points**2, 1), jnp.sum(centres**2, 1)
    )
    shift = jnp.linalg.norm(moved - centres, axis=1)
    upper, lower = (np.asarray(bound) for bound in loosen_bounds(upper, lower, labels, shift))

    after = true_distances(moved)
    own = after[np.arange(500), np.asarray(labels)]
    others = np.where(np.arange(6)[None] == np.asarray(labels)[:, None], np.inf, after).min(axis=1)
    assert np.all(upper >= own)
    assert np.all(lower <= others)
    # Points that the bounds call safe really keep their cluster.
    safe = upper < np.maximum(lower, np.asarray(half_gap(moved, labels)))
    assert safe.sum() > 100
    np.testing.assert_array_equal(after.argmin(axis=1)[safe], np.asarray(labels)[safe])


def test_lloyd_stops_at_tolerance():
    points, _ = make_blobs(2000, 8, 5, seed=3, spread=2.0)
    fit = lloyd(jnp.asarray(points), jnp.asarray(points[:8]), max_iter=200, tol=1e-2)
    change = np.abs(np.diff(fit.inertia_history)) / fit.inertia_history[:-1]
    assert fit.converged
    assert change[-1] < 1e-2
    assert np.all(change[:-1] >= 1e-2)


def test_lloyd_max_iter_and_history():
    points, _ = make_blobs(1000, 8, 5, seed=4, spread=1.0)
    fit = lloyd(jnp.asarray(points), jnp.asarray(points[:8]), max_iter=3, tol=0.0, record_centres=True)
    assert fit.iterations == 3
    assert not fit.converged
    assert fit.centre_history.shape == (3, 8, 5)
    np.testing.assert_array_equal(fit.centre_history[0], points[:8])
    np.testing.assert_array_equal(fit.centre_history[-1], fit.centres)
    # The labels and inertia belong to the returned centres.
    check = assign(jnp.asarray(points), jnp.asarray(fit.centres))
    np.testing.assert_array_equal(fit.labels, np.asarray(check.labels))
    assert fit.inertia == pytest.approx(float(check.inertia), rel=1e-6)


def test_lloyd_compiles_once_per_shape():
    points, _ = make_blobs(300, 4, 3, seed=5)
    lloyd(jnp.asarray(points), jnp.asarray(points[:4]), max_iter=20, tol=1e-4)
    cached = _lloyd_loop._cache_size()
    lloyd(jnp.asarray(points + 1), jnp.asarray(points[4:8]), max_iter=20, tol=1e-3)
    assert _lloyd_loop._cache_size() == cached


# ---------------------------------------------------------------------------------------------
# k-means++


def test_kmeans_pp_picks_distinct_points():
    points, _ = make_blobs(500, 10, 6, seed=6)
    seeding = kmeans_plus_plus(jnp.asarray(points), jax.random.key(0), 10, 3)
    indices = np.asarray(seeding.indices)
    assert bool(seeding.all_distinct)
    assert len(set(indices.tolist())) == 10
    np.testing.assert_array_equal(np.asarray(seeding.centres), points[indices])


def test_kmeans_pp_is_seeded():
    points = jnp.asarray(make_blobs(500, 10, 6, seed=7)[0])
    first = kmeans_plus_plus(points, jax.random.key(1), 10, 1).indices
    again = kmeans_plus_plus(points, jax.random.key(1), 10, 1).indices
    other = kmeans_plus_plus(points, jax.random.key(2), 10, 1).indices
    np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))


@pytest.mark.parametrize("n_trials", [1, 3])
def test_kmeans_pp_one_centre_per_blob(n_trials):
    # Blobs 1000 apart with unit noise: D² sampling puts a second centre into a blob that already
    # has one with probability about 1e-5 per draw.
    rng = np.random.default_rng(8)
    offsets = np.eye(6, 6) * 1000.0
    blob = rng.integers(0, 6, size=600)
    points = (offsets[blob] + rng.normal(size=(600, 6))).astype(np.float32)
    for seed in range(10):
        indices = np.asarray(kmeans_plus_plus(jnp.asarray(points), jax.random.key(seed), 6, n_trials).indices)
        assert sorted(blob[indices].tolist()) == list(range(6)), f"seed {seed}: blobs {blob[indices]}"


def test_kmeans_pp_d2_probabilities():
    # With the first centre on 0, the second is 1 or 3 with probabilities 1/10 and 9/10.
    points = jnp.asarray([[0.0], [1.0], [3.0]], jnp.float32)
    keys = jax.random.split(jax.random.key(9), 6000)
    indices = np.asarray(jax.vmap(lambda key: kmeans_plus_plus(points, key, 2, 1).indices)(keys))
    after_zero = indices[indices[:, 0] == 0, 1]
    assert len(after_zero) > 1500
    assert np.all(after_zero != 0)
    assert np.mean(after_zero == 2) == pytest.approx(0.9, abs=0.03)
    # The first centre is uniform over the three points.
    np.testing.assert_allclose(np.bincount(indices[:, 0], minlength=3) / len(indices), 1 / 3, atol=0.03)


# ---------------------------------------------------------------------------------------------
# Duplicates and empty clusters


def test_duplicate_points_seed_distinct_centres():
    distinct = make_blobs(5, 5, 3, seed=10)[0]
    points = jnp.asarray(np.repeat(distinct, 20, axis=0))
    assert count_distinct_rows(np.asarray(points)) == 5

    centres = seed_centres(points, jax.random.key(0), 5)
    assert count_distinct_rows(np.asarray(centres)) == 5
    fit = lloyd(points, centres, max_iter=50, tol=0.0)
    assert np.all(np.isfinite(fit.centres))
    # Iterations that skip safe points compute the inertia from the cluster sums, which leaves a
    # rounding residue of about float32 epsilon times sum ||x||².
    assert fit.inertia == pytest.approx(0.0, abs=1e-6 * float(jnp.sum(points**2)))
    assert np.bincount(fit.labels, minlength=5).tolist() == [20] * 5


def test_k_above_distinct_points_rejected():
    points = jnp.asarray(np.repeat(make_blobs(5, 5, 3, seed=11)[0], 20, axis=0))
    with pytest.raises(ValueError, match=r"k=6 exceeds the number of distinct points \(5 among 100\)"):
        seed_centres(points, jax.random.key(0), 6)
    assert not bool(kmeans_plus_plus(points, jax.random.key(0), 6, 1).all_distinct)


def test_k_above_n_rejected():
    points = jnp.zeros((4, 2), jnp.float32)
    with pytest.raises(ValueError, match=r"k must be from 1 to the number of points \(4\), got k=5"):
        seed_centres(points, jax.random.key(0), 5)


def test_empty_cluster_reseeded_far_centre():
    points, _ = make_blobs(300, 3, 2, seed=12)
    initial = np.concatenate([points[:3], [[1e4, 1e4]]]).astype(np.float32)  # the last one wins no point

    new_centres, cluster_pass, reseeded = lloyd_step(jnp.asarray(points), jnp.asarray(initial))
    assert int(reseeded) == 1
    assert float(cluster_pass.counts[3]) == 0
    farthest = int(np.argmax(np.asarray(cluster_pass.distances)))
    np.testing.assert_array_equal(np.asarray(new_centres)[3], points[farthest])

    fit = lloyd(jnp.asarray(points), jnp.asarray(initial), max_iter=100, tol=0.0)
    assert fit.reseed_history[0] == 1
    assert fit.reseed_history.sum() >= 1
    assert np.all(np.isfinite(fit.centres))
    assert np.all(np.bincount(fit.labels, minlength=4) > 0)


def test_empty_clusters_from_identical_centres():
    # Ties go to the lower index, so copies 2 and 3 of centre 1 start empty and get two different points.
    points, _ = make_blobs(300, 3, 2, seed=13)
    initial = np.stack([points[0], points[1], points[1], points[1]])
    new_centres, _, reseeded = lloyd_step(jnp.asarray(points), jnp.asarray(initial))
    new_centres = np.asarray(new_centres)
    assert int(reseeded) == 2
    assert np.all(np.isfinite(new_centres))
    assert count_distinct_rows(new_centres) == 4

    fit = lloyd(jnp.asarray(points), jnp.asarray(initial), max_iter=100, tol=0.0)
    assert fit.reseed_history[0] == 2
    assert np.all(np.isfinite(fit.inertia_history))


def test_minibatch_reseeds_empty_cluster():
    points, _ = make_blobs(500, 3, 2, seed=14)
    initial = np.concatenate([points[:3], [[1e4, 1e4]]]).astype(np.float32)
    fit = minibatch_kmeans(
        jnp.asarray(points), jnp.asarray(initial), jax.random.key(0), batch_size=64, max_iter=30, tol=1e-4
    )
    assert fit.reseed_history[0] == 1
    assert np.all(np.isfinite(fit.centres))
    assert np.all(np.bincount(fit.labels, minlength=4) > 0)


# ---------------------------------------------------------------------------------------------
# Mini-batch


def test_minibatch_step_is_running_mean():
    rng = np.random.default_rng(15)
    batches = [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 17, 2)]
    centres, counts = jnp.zeros((1, 3), jnp.float32), jnp.zeros((1,), jnp.float32)
    for batch in batches:
        centres, counts = minibatch_step(centres, counts, jnp.asarray(batch), jnp.sum(jnp.asarray(batch) ** 2, 1))
    np.testing.assert_allclose(np.asarray(centres)[0], np.concatenate(batches).mean(axis=0), rtol=1e-5, atol=1e-6)
    assert float(counts[0]) == 24


def test_minibatch_centre_without_points_stays():
    centres = jnp.asarray([[0.0, 0.0], [100.0, 100.0]], jnp.float32)
    batch = jnp.asarray([[1.0, 1.0], [-1.0, 1.0]], jnp.float32)
    new_centres, counts = minibatch_step(centres, jnp.zeros(2), batch, jnp.sum(batch**2, 1))
    np.testing.assert_allclose(np.asarray(new_centres), [[0.0, 1.0], [100.0, 100.0]])
    np.testing.assert_array_equal(np.asarray(counts), [2.0, 0.0])


def test_minibatch_inertia_close_to_lloyd():
    points, _ = make_blobs(4000, 8, 10, seed=16, spread=3.0)
    points = jnp.asarray(points)
    centres = seed_centres(points, jax.random.key(3), 8)
    full = lloyd(points, centres, max_iter=300, tol=0.0)
    mini = minibatch_kmeans(points, centres, jax.random.key(4), batch_size=256, max_iter=50, tol=1e-4)
    assert mini.converged
    assert mini.inertia == pytest.approx(float(assign(points, jnp.asarray(mini.centres)).inertia), rel=1e-5)
    assert mini.inertia < 1.02 * full.inertia
    assert mini.inertia_history[-1] < 0.7 * mini.inertia_history[0]


# ---------------------------------------------------------------------------------------------
# Scores


LABEL_CASES = {
    "identical": ([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2]),
    "renamed": ([3, 3, 7, 7, -1, -1], [0, 0, 1, 1, 2, 2]),
    "one cluster": ([0, 0, 0, 0], [0, 1, 0, 1]),
    "both one group": ([4, 4, 4], [9, 9, 9]),
    "all singletons": ([0, 1, 2, 3], [0, 1, 2, 3]),
    "singletons vs one": ([0, 1, 2, 3], [5, 5, 5, 5]),
    "single point": ([0], [1]),
    "two points split": ([0, 1], [0, 0]),
    "partial": ([0, 0, 1, 2, 2, 2], [0, 0, 0, 1, 1, 2]),
    "random": (np.random.default_rng(17).integers(0, 10, 2000), np.random.default_rng(18).integers(0, 7, 2000)),
    "noisy": (
        np.random.default_rng(19).integers(0, 10, 5000) // 2,
        np.random.default_rng(19).integers(0, 10, 5000),
    ),
}


@pytest.mark.parametrize("case", LABEL_CASES)
def test_scores_match_sklearn(case):
    clusters, labels = (np.asarray(values) for values in LABEL_CASES[case])
    scores = cluster_scores(clusters, labels)
    assert scores.nmi == pytest.approx(normalized_mutual_info_score(labels, clusters), abs=1e-10)
    assert scores.ari == pytest.approx(adjusted_rand_score(labels, clusters), abs=1e-10)


def test_purity_known_values():
    assert purity(contingency_table([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1])) == pytest.approx(5 / 6)
    assert purity(contingency_table([0, 1, 2], [0, 0, 0])) == 1.0
    assert purity(contingency_table([0, 0, 0, 0], [0, 1, 2, 3])) == 0.25


def test_fixed_shape_table_scores():
    clusters = np.array([0, 0, 2, 2, 2])  # cluster 1 is empty
    labels = np.array([1, 1, 0, 0, 1])
    table = cluster_label_counts(clusters, labels, 3, 4)
    assert table.shape == (3, 4)
    assert table.tolist() == [[0, 2, 0, 0], [0, 0, 0, 0], [2, 1, 0, 0]]
    assert normalized_mutual_information(table) == pytest.approx(normalized_mutual_info_score(labels, clusters))
    assert adjusted_rand_index(table) == pytest.approx(adjusted_rand_score(labels, clusters))


def test_contingency_rejects_length_mismatch():
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        contingency_table([0, 1, 2], [0, 1])


# ---------------------------------------------------------------------------------------------
# Figures


def test_iteration_majority_labels():
    # Points 0-2 have label 0 and sit near 0, points 3-5 have label 1 and sit near 10.
    points = jnp.asarray([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    centre_history = np.array([[[10.0], [0.0]], [[0.0], [10.0]]])  # the two centres swap places
    scores = _score_iterations(points, labels, centre_history, num_classes=2)
    assert scores.majority_labels.tolist() == [[1, 0], [0, 1]]
    assert scores.purity.tolist() == [1.0, 1.0]


def test_animation_captions_per_iteration():
    majority_history = np.array([[1, 0, 1], [0, 1, 1]])
    captions = animation_captions(majority_history, np.array([2, 0, 1]), ("zero", "one"))
    assert captions == [["2 → one", "0 → one", "1 → zero"], ["2 → one", "0 → zero", "1 → one"]]


def test_centroid_frames_redraw_captions():
    centre_history = np.full((2, 2, 16), 0.5)  # the same centres in both iterations
    captions = [["0 → 0", "1 → 1"], ["0 → 7", "1 → 1"]]
    frames = list(centroid_frames(centre_history, (1, 4, 4), np.array([1.0, 1.0]), np.array([0, 1]), captions, dpi=50))
    assert len(frames) == 2
    assert frames[0].shape == frames[1].shape
    assert not np.array_equal(frames[0], frames[1])  # only the first caption differs


def test_examples_figure_explains_red():
    examples = np.zeros((1, 2, 1, 4, 4), np.uint8)
    figure = examples_figure(
        np.zeros((1, 16)), examples, np.array([[3, 5]]), np.array([3]), np.array([2]), [str(i) for i in range(10)], "run"
    )
    titles = {ax.get_title(): ax.title.get_color() for ax in figure.axes if ax.get_title()}
    assert titles["3"] == "black"
    assert titles["5"] == "tab:red"
    assert RED_LABEL_NOTE in figure.get_suptitle()
    assert "red" in RED_LABEL_NOTE
    assert "majority label" in RED_LABEL_NOTE


# ---------------------------------------------------------------------------------------------
# Command line and smoke runs


def run_train(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), *arguments],
        capture_output=True,
        text=True,
        env=env if env is not None else dict(os.environ),
        timeout=300,
    )


def test_config_rejects_bad_values():
    bad = [
        ({"k": 0}, "--k must be >= 1, got 0"),
        ({"max_iter": 0}, "--max-iter must be >= 1, got 0"),
        ({"tol": -1.0}, "--tol must be a finite number >= 0, got -1.0"),
        ({"tol": float("nan")}, "--tol must be a finite number >= 0, got nan"),
        ({"batch_size": 0}, "--batch-size must be >= 1, got 0"),
        ({"seed": -1}, "--seed must be from 0 to 4294967295, got -1"),
        ({"n_train": 5, "k": 10}, r"--k must be at most --n-train \(5\), got 10"),
        ({"init_trials": 0}, "--init-trials must be >= 1, got 0"),
    ]
    for fields, message in bad:
        with pytest.raises(ValueError, match=message):
            KMeansConfig(**fields)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--k", "0"], "--k must be >= 1, got 0"),
        (["--tol", "-0.5"], "--tol must be a finite number >= 0, got -0.5"),
        (["--algorithm", "elkan"], "invalid choice: 'elkan'"),
        (["--n-train", "5", "--k", "10"], "--k must be at most --n-train (5), got 10"),
    ],
)
def test_cli_rejects_bad_arguments(arguments, message):
    result = run_train(*arguments)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def mnist_env(tmp_path: Path) -> dict:
    """Return an environment for train.py that saves locally under `tmp_path`, or skip without SEEWHY_DATA_DIR."""
    if not os.environ.get("SEEWHY_DATA_DIR"):
        pytest.skip("SEEWHY_DATA_DIR is not set; it must name a folder with mnist/ in it")
    env = {name: value for name, value in os.environ.items() if not name.startswith("R2_")}
    env.update(SEEWHY_OUTPUT_DIR=str(tmp_path), SEEWHY_DOTENV_PATH="")
    return env


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--n-train", "70000"], "--n-train must be from 1 to 60000 (the size of the mnist training split), got 70000"),
        (["--k", "70000"], "--k must be from 1 to the number of images (60000), got 70000"),
    ],
)
def test_cli_rejects_sizes_above_data(arguments, message, tmp_path):
    result = run_train(*arguments, "--quiet", env=mnist_env(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("usage: train.py"), result.stderr
    assert f"train.py: error: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.*"))  # nothing saved


def test_cli_help_shows_defaults():
    result = run_train("--help")
    assert result.returncode == 0, result.stderr
    for option in ("--k", "--algorithm", "--max-iter", "--tol", "--seed", "--n-train", "--dataset", "--batch-size"):
        assert option in result.stdout
    assert "(default: 10)" in result.stdout
    assert "{lloyd,minibatch}" in result.stdout


ARTIFACTS = (
    "centroids.png", "centroids.mp4", "metrics.png", "confusion.png", "examples.png", "metrics.json", "run.log",
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["lloyd", "minibatch"])
def test_train_smoke_mnist(algorithm, tmp_path):
    env = mnist_env(tmp_path)
    result = run_train(
        "--n-train", "1500", "--k", "10", "--max-iter", "25", "--algorithm", algorithm, "--batch-size", "256",
        "--quiet", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    printed = dict(line.split(" -> ", 1) for line in result.stdout.splitlines() if " -> " in line)
    assert sorted(printed) == sorted(ARTIFACTS)
    for name, location in printed.items():
        path = Path(location)
        assert path.is_file(), name
        assert path.stat().st_size > 0, name
        assert path.name == name
        assert tmp_path in path.parents

    metrics = json.loads(Path(printed["metrics.json"]).read_text())
    per_iteration = metrics["per_iteration"]
    iterations = metrics["iterations"]
    assert 1 <= iterations <= 25
    assert metrics["config"]["algorithm"] == algorithm
    assert metrics["data"]["points"] == 1500
    for name in ("inertia", "purity", "nmi", "ari", "empty_cluster_reseeds"):
        assert len(per_iteration[name]) == iterations, name
    for name in ("inertia", "purity", "nmi", "ari"):
        assert metrics["final"][name] == per_iteration[name][-1], name
    assert metrics["empty_cluster_reseeds"] == sum(per_iteration["empty_cluster_reseeds"])
    assert sum(metrics["cluster_sizes"]) == 1500
    if not metrics["converged"]:
        assert iterations == 25
    assert 0.3 < metrics["final"]["purity"] <= 1.0
    assert per_iteration["inertia"][-1] < per_iteration["inertia"][0]
    assert metrics["seconds"]["fit_per_iteration"] > 0
    # run.log is saved after metrics.json, so metrics.json lists every other artifact.
    assert set(metrics["artifacts"]) == set(ARTIFACTS) - {"metrics.json", "run.log"}

    counts = np.array(metrics["cluster_label_counts"])
    labels = np.asarray(load_supervised_image("mnist", n_tr=1500).y)
    assert counts.shape == (10, 10)
    assert counts.sum(axis=1).tolist() == metrics["cluster_sizes"]
    assert counts.sum(axis=0).tolist() == np.bincount(labels, minlength=10).tolist()
    assert metrics["majority_labels"] == counts.argmax(axis=1).tolist()
    assert metrics["final"]["purity"] == pytest.approx(counts.max(axis=1).sum() / 1500)
    assert metrics["class_names"] == [str(digit) for digit in range(10)]
    example_labels = np.array(metrics["example_labels"])
    assert example_labels.shape == (10, 8)
    for cluster, row in enumerate(example_labels):
        for label in row[row >= 0]:
            assert counts[cluster, label] > 0, (cluster, label)

    log = Path(printed["run.log"]).read_text()
    assert f"Run {metrics['run_id']}: KMeansConfig(" in log
    assert "Loaded 1500 mnist images of dimension 784" in log
    assert f"{algorithm} stopped after {iterations} iterations" in log
    assert f"Final purity {metrics['final']['purity']:.3f}, NMI {metrics['final']['nmi']:.3f}" in log
    if algorithm == "lloyd" and metrics["empty_cluster_reseeds"] == 0:
        assert np.all(np.diff(per_iteration["inertia"]) <= 1e-6 * per_iteration["inertia"][0])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, *sys.argv[1:]]))
