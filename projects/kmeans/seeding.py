"""k-means++ seeding: D² sampling with optional greedy local trials.

Arthur and Vassilvitskii, "k-means++: The Advantages of Careful Seeding" (SODA 2007). The first
centre is a uniformly random point. Each further centre is drawn with probability proportional to
D², the squared distance from a point to its closest centre chosen so far. With `n_trials` > 1, the
greedy variant draws that many candidates and keeps the one that lowers the sum of D² the most.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from projects.kmeans.distances import squared_distances, squared_norms

__all__ = ["Seeding", "count_distinct_rows", "default_trials", "kmeans_plus_plus", "seed_centres"]

# Squared distances below this fraction of ||x||² + ||c||² count as zero while seeding. The expanded
# form leaves a rounding residue of about float32 epsilon times that sum for a point that equals a
# centre, and without the cut-off D² sampling could pick a duplicate of a chosen centre.
_ZERO_DISTANCE_FRACTION = 1e-5


class Seeding(NamedTuple):
    """Initial centres (k, d), the row index of the point each one copies (k,) and whether all k are distinct."""

    centres: jax.Array
    indices: jax.Array
    all_distinct: jax.Array  # bool scalar, False when fewer than k distinct points were found


def default_trials(k: int) -> int:
    """Return 2 + floor(ln k) local trials, the default that scikit-learn documents for `kmeans_plusplus`."""
    return 2 + int(math.log(k))


def _seeding_distances(points, point_sq_norms, centres):
    """Squared distances (n, m) with rounding residues around zero set to exactly zero."""
    distances = squared_distances(points, point_sq_norms, centres)
    scale = point_sq_norms[:, None] + squared_norms(centres)[None, :]
    return jnp.where(distances <= _ZERO_DISTANCE_FRACTION * scale, 0.0, distances)


@partial(jax.jit, static_argnames=("k", "n_trials"))
def kmeans_plus_plus(points: jax.Array, key: jax.Array, k: int, n_trials: int = 1) -> Seeding:
    """Choose `k` initial centres among the rows of `points` (n, d) by k-means++ D² sampling.

    `n_trials` = 1 is plain D² sampling; larger values run the greedy variant. A point that equals a
    chosen centre has D² = 0 and is never drawn, so the centres are distinct whenever the data has at
    least `k` distinct points. Otherwise `all_distinct` is False and the surplus centres repeat points.
    """
    n, d = points.shape
    point_sq_norms = squared_norms(points)
    key_first, key_rest = jax.random.split(key)

    first = jax.random.randint(key_first, (), 0, n)
    closest = _seeding_distances(points, point_sq_norms, points[first][None, :])[:, 0]  # (n,) D²
    centres = jnp.zeros((k, d), points.dtype).at[0].set(points[first])
    indices = jnp.zeros((k,), jnp.int32).at[0].set(first)

    def add_centre(j, state):
        centres, indices, closest, all_distinct = state
        all_distinct = all_distinct & (jnp.sum(closest) > 0)

        # log(0) = -inf gives points on a chosen centre probability zero.
        candidates = jax.random.categorical(jax.random.fold_in(key_rest, j), jnp.log(closest), shape=(n_trials,))
        candidate_distances = _seeding_distances(points, point_sq_norms, points[candidates])  # (n, n_trials)
        closest_with_candidate = jnp.minimum(closest[:, None], candidate_distances)  # (n, n_trials)
        best = jnp.argmin(jnp.sum(closest_with_candidate, axis=0))

        centres = centres.at[j].set(points[candidates[best]])
        indices = indices.at[j].set(candidates[best])
        return centres, indices, closest_with_candidate[:, best], all_distinct

    state = (centres, indices, closest, jnp.array(True))
    centres, indices, _, all_distinct = jax.lax.fori_loop(1, k, add_centre, state)
    return Seeding(centres, indices, all_distinct)


def count_distinct_rows(points: np.ndarray) -> int:
    """Return the number of distinct rows of a 2-D array, comparing raw bytes."""
    rows = np.ascontiguousarray(points)
    return len(np.unique(rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).ravel()))


def seed_centres(points: jax.Array, key: jax.Array, k: int, n_trials: int | None = None) -> jax.Array:
    """Return `k` k-means++ centres (k, d), or raise ValueError when `points` has fewer than k distinct rows.

    `n_trials` defaults to `default_trials(k)`.
    """
    n = points.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be from 1 to the number of points ({n}), got k={k}")
    seeding = kmeans_plus_plus(points, key, k, n_trials or default_trials(k))
    if not bool(seeding.all_distinct):
        distinct = count_distinct_rows(np.asarray(points))
        if distinct < k:
            raise ValueError(f"k={k} exceeds the number of distinct points ({distinct} among {n}). Choose k <= {distinct}.")
        # Rows closer than the zero-distance cut-off count as equal while seeding, so the check can
        # fail although every row differs in its bytes.
        raise ValueError(
            f"k-means++ found fewer than k={k} points that are not within rounding error of each other "
            f"({distinct} rows differ). Choose a smaller k."
        )
    return seeding.centres
