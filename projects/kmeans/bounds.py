"""Distance bounds that let a Lloyd iteration skip the points whose cluster cannot change.

After Hamerly, "Making k-means even faster" (SDM 2010). Each point keeps an upper bound on the
distance to its own centre and a lower bound on the distance to every other centre. When the
centres move by `shift`, the upper bound grows by its own centre's shift and the lower bound shrinks
by the largest shift among the other centres. A point whose upper bound stays below its lower bound
keeps its cluster, so an iteration only has to compute distances for the other points. The result
is the same assignment that a full Lloyd pass computes, up to ties within float32 rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["PartialPass", "exact_bounds", "half_gap", "loosen_bounds", "partial_pass"]

# Squared distances from the expanded form are off by up to about float32 epsilon times
# ||x||² + ||c||². The bounds are widened by this multiple of that sum so that rounding never
# makes a point look safe when it is not.
_ROUNDING_MARGIN = 1e-5


def exact_bounds(nearest, second, sq_norms, centre_sq_norms):
    """Return (upper, lower) distance bounds (n,) from the squared distances to the nearest and second-nearest centres."""
    margin = _ROUNDING_MARGIN * (sq_norms + jnp.max(centre_sq_norms))
    return jnp.sqrt(nearest + margin), jnp.sqrt(jnp.maximum(second - margin, 0.0))


def loosen_bounds(upper, lower, labels, shift):
    """Return the bounds (n,) after the centres moved by `shift` (k,), the Euclidean length of each move."""
    k = shift.shape[0]
    if k == 1:
        return upper + shift[0], lower
    (largest, runner_up), (largest_index, _) = jax.lax.top_k(shift, 2)
    other_shift = jnp.where(labels == largest_index, runner_up, largest)  # largest move of another centre
    return upper + shift[jnp.clip(labels, 0, k - 1)], lower - other_shift


def half_gap(centres, labels):
    """Return, for each point (n,), half the distance from its centre to the nearest other centre.

    A point closer to its centre than this cannot be closer to another centre, whatever its lower
    bound is (Hamerly's second test).
    """
    k = centres.shape[0]
    if k == 1:
        return jnp.full(labels.shape, jnp.inf, centres.dtype)
    gaps = jnp.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=-1)  # (k, k)
    nearest_other = jnp.min(jnp.where(jnp.eye(k, dtype=bool), jnp.inf, gaps), axis=1)  # (k,)
    # Shrunk by the rounding margin, like the bounds.
    return (0.5 * nearest_other * (1 - _ROUNDING_MARGIN))[jnp.clip(labels, 0, k - 1)]


class PartialPass(NamedTuple):
    """State after recomputing the distances of the unsafe points only."""

    labels: jax.Array  # (n,)
    sums: jax.Array  # (k, d)
    counts: jax.Array  # (k,)
    inertia: jax.Array  # scalar, from the cluster sums
    upper: jax.Array  # (n,)
    lower: jax.Array  # (n,)
    changed: jax.Array  # bool scalar, whether any point changed cluster


def partial_pass(points, sq_norms, centres, labels, sums, counts, upper, lower, unsafe, total_sq_norm, budget):
    """Recompute the assignment of the points marked `unsafe` (at most `budget` of them).

    The unsafe rows are gathered into a (budget, d) block, assigned with one matrix product, and
    moved between the cluster sums. The inertia of the other points is not computed point by point.
    It follows from the cluster sums S_j and sizes n_j as
    sum ||x||² - 2 sum_j c_j·S_j + sum_j n_j ||c_j||², which is exact in real arithmetic.
    """
    n = points.shape[0]
    k = centres.shape[0]
    index = jnp.nonzero(unsafe, size=budget, fill_value=n)[0]  # (budget,); n marks an unused slot
    valid = index < n
    rows = points.at[index].get(mode="fill", fill_value=0.0)  # (budget, d)
    row_sq_norms = sq_norms.at[index].get(mode="fill", fill_value=0.0)
    centre_sq_norms = jnp.sum(centres * centres, axis=1)

    distances = jnp.maximum(row_sq_norms[:, None] - 2.0 * (rows @ centres.T) + centre_sq_norms[None, :], 0.0)
    new_labels = jnp.argmin(distances, axis=1).astype(jnp.int32)  # (budget,)
    is_own = jnp.arange(k)[None, :] == new_labels[:, None]
    nearest = jnp.min(distances, axis=1)
    second = jnp.min(jnp.where(is_own, jnp.inf, distances), axis=1)
    new_upper, new_lower = exact_bounds(nearest, second, row_sq_norms, centre_sq_norms)

    old_labels = labels.at[index].get(mode="fill", fill_value=-1)
    weight = valid.astype(points.dtype)[:, None]
    delta = (is_own * weight) - (jnp.arange(k)[None, :] == old_labels[:, None]) * weight  # (budget, k)
    sums = sums + delta.T @ rows
    counts = counts + jnp.sum(delta, axis=0)
    inertia = total_sq_norm - 2.0 * jnp.sum(centres * sums) + jnp.sum(counts * centre_sq_norms)

    return PartialPass(
        labels=labels.at[index].set(new_labels, mode="drop"),
        sums=sums,
        counts=counts,
        inertia=jnp.maximum(inertia, 0.0),
        upper=upper.at[index].set(new_upper, mode="drop"),
        lower=lower.at[index].set(new_lower, mode="drop"),
        changed=jnp.any(valid & (new_labels != old_labels)),
    )
