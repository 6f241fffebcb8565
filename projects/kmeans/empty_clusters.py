"""Re-seeding of empty clusters, so that a centre that loses all its points never becomes 0/0 = NaN."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["reseed_empty_clusters"]


def _move_to_farthest_points(centres, counts, points, own_centre_distances):
    k = centres.shape[0]
    empty = counts == 0  # (k,)
    # The m-th empty cluster takes the m-th farthest point, so two empty clusters never share a point.
    _, farthest = jax.lax.top_k(own_centre_distances, k)  # (k,) row indices, farthest first
    rank = jnp.clip(jnp.cumsum(empty) - 1, 0, k - 1)  # (k,)
    replacements = points[farthest[rank]]  # (k, d)
    return jnp.where(empty[:, None], replacements, centres)


def reseed_empty_clusters(
    centres: jax.Array, counts: jax.Array, points: jax.Array, own_centre_distances: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Move the centre of each empty cluster onto a point far from its own centre.

    Args:
        centres: (k, d) centres after the update; rows of empty clusters are replaced.
        counts: (k,) number of points assigned to each cluster; 0 marks an empty cluster.
        points: (n, d) data the replacements are taken from.
        own_centre_distances: (n,) squared distance from each point to its assigned centre. Rows that
            must never become centres (padding) should hold a negative value.

    Returns:
        The centres (k, d) and the number of clusters that were re-seeded (int32 scalar). The points
        with the largest distances go to the empty clusters in cluster order. The selection runs only
        when a cluster is empty, inside `lax.cond`.
    """
    empty_count = jnp.sum(counts == 0).astype(jnp.int32)
    reseeded = jax.lax.cond(
        empty_count > 0,
        _move_to_farthest_points,
        lambda centres, *_: centres,
        centres,
        counts,
        points,
        own_centre_distances,
    )
    return reseeded, empty_count
