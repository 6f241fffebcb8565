"""Squared Euclidean distances between points and centres, by the expanded form.

||x - c||² = ||x||² - 2 x·c + ||c||² turns the n×k distance table into one (n, d) @ (d, k) matrix
product. Rounding can make the expanded form slightly negative for points that sit on a centre, so
the result is clamped at zero.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["squared_distances", "squared_norms"]


def squared_norms(points: jax.Array) -> jax.Array:
    """Return ||x||² for each row of `points` (n, d), shape (n,)."""
    return jnp.sum(points * points, axis=1)


def squared_distances(points: jax.Array, point_sq_norms: jax.Array, centres: jax.Array) -> jax.Array:
    """Return the squared distances (n, k) from `points` (n, d) to `centres` (k, d).

    `point_sq_norms` (n,) is `squared_norms(points)`, passed in so that loops compute it once.
    """
    centre_sq_norms = squared_norms(centres)  # (k,)
    dots = points @ centres.T  # (n, k)
    distances = point_sq_norms[:, None] - 2.0 * dots + centre_sq_norms[None, :]
    return jnp.maximum(distances, 0.0)
