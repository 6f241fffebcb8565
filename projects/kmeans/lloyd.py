"""Lloyd's k-means iterations, compiled as one `lax.while_loop`.

Each iteration is one pass over the data in chunks of rows (`lax.scan`). For every chunk the pass
computes the squared distances to the centres as a matrix product, takes the nearest centre, and
adds the chunk into the per-cluster sums through a one-hot (k, rows) @ (rows, d) product, while the
chunk is still in cache. The new centres are sums / counts. An empty cluster is re-seeded from the
point farthest from its centre (`reseed_empty_clusters`).

The loop stops after `max_iter` passes, or at the first pass whose assignment equals the previous
one (a fixed point), or whose inertia differs from the previous pass's by less than `tol` relative
to it, unless that pass re-seeded a cluster.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from projects.kmeans import progress
from projects.kmeans.distances import squared_norms
from shared_lib.experiment import PhaseTimer
from projects.kmeans.empty_clusters import reseed_empty_clusters

__all__ = ["DEFAULT_CHUNK_ROWS", "ClusterPass", "KMeansFit", "assign", "lloyd", "lloyd_step"]

# Rows per chunk of the fused pass. A 2000 x 784 float32 chunk (6 MB) stays in the L2/L3 caches while
# it is used twice, and on the 2-core development machine chunks of 1000 to 4000 rows ran an MNIST
# pass in 11.5-11.7 ms against 13.8 ms for one whole-array pass (20 iterations, k = 10).
DEFAULT_CHUNK_ROWS = 2000


class ClusterPass(NamedTuple):
    """Result of assigning every point to its nearest centre and summing the clusters."""

    labels: jax.Array  # (n,) int32 index of the nearest centre
    distances: jax.Array  # (n,) squared distance to that centre
    sums: jax.Array  # (k, d) sum of the points of each cluster
    counts: jax.Array  # (k,) number of points in each cluster, float32
    inertia: jax.Array  # scalar, sum of `distances`


class KMeansFit(NamedTuple):
    """A finished k-means run. Histories have one row per iteration, from the initial centres on.

    `centres` are the centres of the last iteration, `labels` and `inertia` the assignment to them.
    """

    centres: np.ndarray  # (k, d)
    labels: np.ndarray  # (n,) int32
    inertia: float
    iterations: int
    converged: bool
    inertia_history: np.ndarray  # (iterations,) inertia of each iteration's centres
    reseed_history: np.ndarray  # (iterations,) empty clusters re-seeded after each iteration
    centre_history: np.ndarray | None  # (iterations, k, d), when recorded


class _Chunks(NamedTuple):
    points: jax.Array  # (chunks, rows, d), zero rows appended to fill the last chunk
    sq_norms: jax.Array  # (chunks, rows)
    weights: jax.Array  # (chunks, rows), 1 for data rows and 0 for padding


def chunk_layout(n: int, target_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[int, int]:
    """Return (chunks, rows per chunk) covering `n` rows with chunks close to `target_rows` rows."""
    num_chunks = max(1, math.ceil(n / target_rows))
    return num_chunks, math.ceil(n / num_chunks)


def _split_into_chunks(points, num_chunks, rows):
    n, d = points.shape
    padding = num_chunks * rows - n
    sq_norms = squared_norms(points)
    weights = jnp.ones((n,), points.dtype)
    if padding:
        points = jnp.pad(points, ((0, padding), (0, 0)))
        sq_norms = jnp.pad(sq_norms, (0, padding))
        weights = jnp.pad(weights, (0, padding))
    return _Chunks(
        points.reshape(num_chunks, rows, d), sq_norms.reshape(num_chunks, rows), weights.reshape(num_chunks, rows)
    )


def _cluster_pass(chunks: _Chunks, centres: jax.Array) -> ClusterPass:
    """Assign each row of `chunks` to its nearest centre and accumulate the sums, one chunk at a time."""
    k, d = centres.shape
    centre_sq_norms = squared_norms(centres)  # (k,)

    def visit_chunk(totals, chunk):
        sums, counts, inertia = totals
        points, sq_norms, weights = chunk  # (rows, d), (rows,), (rows,)
        distances = sq_norms[:, None] - 2.0 * (points @ centres.T) + centre_sq_norms[None, :]
        distances = jnp.maximum(distances, 0.0)  # (rows, k)
        labels = jnp.argmin(distances, axis=1).astype(jnp.int32)
        nearest = jnp.min(distances, axis=1) * weights  # (rows,)
        one_hot = (labels[:, None] == jnp.arange(k)[None, :]).astype(points.dtype) * weights[:, None]
        totals = (sums + one_hot.T @ points, counts + jnp.sum(one_hot, axis=0), inertia + jnp.sum(nearest))
        return totals, (labels, nearest)

    initial = (jnp.zeros((k, d), centres.dtype), jnp.zeros((k,), centres.dtype), jnp.zeros((), centres.dtype))
    (sums, counts, inertia), (labels, nearest) = jax.lax.scan(visit_chunk, initial, chunks)
    return ClusterPass(labels.reshape(-1), nearest.reshape(-1), sums, counts, inertia)


def _update(centres, cluster_pass, points, weights):
    """New centres: cluster means, with empty clusters re-seeded. Returns (centres, re-seed count)."""
    means = cluster_pass.sums / jnp.maximum(cluster_pass.counts, 1.0)[:, None]
    means = jnp.where(cluster_pass.counts[:, None] > 0, means, centres)
    # Padding rows get a negative distance so that they are never picked as a new centre.
    own_distances = jnp.where(weights > 0, cluster_pass.distances, -1.0)
    return reseed_empty_clusters(means, cluster_pass.counts, points, own_distances)


@partial(jax.jit, static_argnames=("chunk_rows",))
def assign(points: jax.Array, centres: jax.Array, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> ClusterPass:
    """Assign each row of `points` (n, d) to its nearest row of `centres` (k, d)."""
    n = points.shape[0]
    chunks = _split_into_chunks(points, *chunk_layout(n, chunk_rows))
    result = _cluster_pass(chunks, centres)
    return result._replace(labels=result.labels[:n], distances=result.distances[:n])


@partial(jax.jit, static_argnames=("chunk_rows",))
def lloyd_step(
    points: jax.Array, centres: jax.Array, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> tuple[jax.Array, ClusterPass, jax.Array]:
    """Run one Lloyd iteration from `centres`: returns (new centres, the pass, re-seeded cluster count)."""
    n = points.shape[0]
    chunks = _split_into_chunks(points, *chunk_layout(n, chunk_rows))
    cluster_pass = _cluster_pass(chunks, centres)
    flat_points = chunks.points.reshape(-1, points.shape[1])
    new_centres, reseeded = _update(centres, cluster_pass, flat_points, chunks.weights.reshape(-1))
    cluster_pass = cluster_pass._replace(labels=cluster_pass.labels[:n], distances=cluster_pass.distances[:n])
    return new_centres, cluster_pass, reseeded


class _LoopState(NamedTuple):
    iteration: jax.Array
    centres: jax.Array  # centres for the next pass
    assigned_centres: jax.Array  # centres of the last pass
    labels: jax.Array
    inertia: jax.Array
    done: jax.Array
    inertia_history: jax.Array
    reseed_history: jax.Array
    centre_history: jax.Array


@partial(jax.jit, static_argnames=("max_iter", "chunk_rows", "record_centres", "report_progress"))
def _lloyd_loop(points, initial_centres, tol, *, max_iter, chunk_rows, record_centres, report_progress):
    n, d = points.shape
    k = initial_centres.shape[0]
    chunks = _split_into_chunks(points, *chunk_layout(n, chunk_rows))
    flat_points = chunks.points.reshape(-1, d)
    flat_weights = chunks.weights.reshape(-1)

    def iterate(state: _LoopState) -> _LoopState:
        i = state.iteration
        cluster_pass = _cluster_pass(chunks, state.centres)
        new_centres, reseeded = _update(state.centres, cluster_pass, flat_points, flat_weights)
        if report_progress:
            progress.report(i, cluster_pass.inertia)

        unchanged = jnp.all((cluster_pass.labels == state.labels) | (flat_weights == 0))
        relative_change = jnp.abs(state.inertia - cluster_pass.inertia) / jnp.maximum(state.inertia, 1e-30)
        small_change = (i > 0) & (relative_change < tol)
        converged = (reseeded == 0) & (unchanged | small_change)

        centre_history = state.centre_history
        if record_centres:
            centre_history = centre_history.at[i].set(state.centres)
        return _LoopState(
            iteration=i + 1,
            centres=new_centres,
            assigned_centres=state.centres,
            labels=cluster_pass.labels,
            inertia=cluster_pass.inertia,
            done=converged,
            inertia_history=state.inertia_history.at[i].set(cluster_pass.inertia),
            reseed_history=state.reseed_history.at[i].set(reseeded),
            centre_history=centre_history,
        )

    history_rows = max_iter if record_centres else 0
    initial = _LoopState(
        iteration=jnp.array(0, jnp.int32),
        centres=initial_centres,
        assigned_centres=initial_centres,
        labels=jnp.full((flat_points.shape[0],), -1, jnp.int32),
        inertia=jnp.array(jnp.inf, points.dtype),
        done=jnp.array(False),
        inertia_history=jnp.zeros((max_iter,), points.dtype),
        reseed_history=jnp.zeros((max_iter,), jnp.int32),
        centre_history=jnp.zeros((history_rows, k, d), points.dtype),
    )
    final = jax.lax.while_loop(lambda s: (s.iteration < max_iter) & ~s.done, iterate, initial)
    return final._replace(labels=final.labels[:n])


def lloyd(
    points: jax.Array,
    initial_centres: jax.Array,
    *,
    max_iter: int,
    tol: float,
    record_centres: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_iteration: Callable[[int, float], None] | None = None,
    timer: PhaseTimer | None = None,
) -> KMeansFit:
    """Run Lloyd's algorithm on `points` (n, d) float32 from `initial_centres` (k, d).

    Args:
        max_iter: maximum number of assignment passes, the first one at `initial_centres`.
        tol: stop when the inertia changes by less than this fraction of the previous inertia.
        record_centres: keep the centres of every iteration in `centre_history`.
        on_iteration: called with (iteration, inertia) from inside the compiled loop, for progress.
        timer: when given, compilation is timed as its "compile" phase and the loop as "fit".
    """
    tol = jnp.asarray(tol, points.dtype)
    loop = partial(
        _lloyd_loop,
        max_iter=max_iter,
        chunk_rows=chunk_rows,
        record_centres=record_centres,
        report_progress=on_iteration is not None,
    )
    if timer is not None:
        with timer.phase("compile"):
            loop = loop.func.lower(points, initial_centres, tol, **loop.keywords).compile()

    fit_phase = timer.phase("fit") if timer is not None else contextlib.nullcontext()
    with progress.reporting_to(on_iteration), fit_phase:
        state = jax.block_until_ready(loop(points, initial_centres, tol))
    iterations = int(state.iteration)
    return KMeansFit(
        centres=np.asarray(state.assigned_centres),
        labels=np.asarray(state.labels),
        inertia=float(state.inertia),
        iterations=iterations,
        converged=bool(state.done),
        inertia_history=np.asarray(state.inertia_history[:iterations]),
        reseed_history=np.asarray(state.reseed_history[:iterations]),
        centre_history=np.asarray(state.centre_history[:iterations]) if record_centres else None,
    )
