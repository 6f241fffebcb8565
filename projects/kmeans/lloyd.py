"""Lloyd's k-means iterations, compiled as one `lax.while_loop`.

A full iteration is one pass over the data in chunks of rows (`lax.scan`). For every chunk, the pass
computes the squared distances to the centres as a matrix product and takes the nearest centre.
While the chunk is still in cache, it then updates the per-cluster sums through a one-hot
(k, rows) @ (rows, d) product. The sums are kept between iterations, and only the rows that changed cluster are
added and subtracted (`incremental`). The new centres are sums / counts. An empty cluster is
re-seeded from the point farthest from its centre (`reseed_empty_clusters`).

With `skip_safe_points`, per-point distance bounds (`bounds`) mark the points whose cluster cannot
change. When few points are unsafe, the iteration gathers only those and skips the full pass. Such
an iteration computes the inertia from the cluster sums, which carries a rounding error of about
float32 epsilon times sum ||x||² instead of summing each point's distance (on MNIST it stayed within
3.2e-7 of the full-pass inertia).

The loop stops at the first of three events. The first is reaching `max_iter` iterations. The
second is an assignment equal to the previous one (a fixed point). The third is a relative change
in inertia below `tol`. Neither the second nor the third stops an iteration that re-seeded a cluster.
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
from projects.kmeans.bounds import PartialPass, exact_bounds, half_gap, loosen_bounds, partial_pass
from projects.kmeans.distances import squared_norms
from projects.kmeans.empty_clusters import reseed_empty_clusters
from shared_lib.experiment import PhaseTimer

__all__ = ["DEFAULT_CHUNK_ROWS", "ClusterPass", "KMeansFit", "assign", "lloyd", "lloyd_step"]

# Rows per chunk of a full pass. A 2000 x 784 float32 chunk (6 MB) stays in the L2/L3 caches while
# it is used twice. On the 2-core development machine, 2000-row chunks made Lloyd on MNIST with
# k = 10 take 13.2 ms per iteration against 16.1 ms for whole-array passes (bench.py times both).
DEFAULT_CHUNK_ROWS = 2000

# When few points may change cluster, an iteration gathers those points into a block of one of these
# sizes (fractions of n), the smallest that fits, instead of passing over all points (see `bounds`).
# The gather costs as much as its block size, whatever the number of points in it. On the 2-core
# development machine, gathering 7,500 of the 60,000 MNIST rows took 1.5 ms, and 15,000 took 15 ms
# against 10 ms for a full pass, so blocks stop at 1/8.
PARTIAL_FRACTIONS = (1 / 64, 1 / 16, 1 / 8)


class ClusterPass(NamedTuple):
    """Result of assigning every point to its nearest centre and summing the clusters."""

    labels: jax.Array  # (n,) int32 index of the nearest centre
    distances: jax.Array  # (n,) squared distance to that centre
    sums: jax.Array  # (k, d) sum of the points of each cluster
    counts: jax.Array  # (k,) number of points in each cluster, float32
    inertia: jax.Array  # scalar, sum of `distances`
    second: jax.Array | None = None  # (n,) squared distance to the second-nearest centre, when requested


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


def _one_hot(labels, k, weights):
    """Return the (rows, k) one-hot rows of `labels`, scaled by `weights`. A label of -1 gives a zero row."""
    return (labels[:, None] == jnp.arange(k)[None, :]).astype(weights.dtype) * weights[:, None]


def _sums_change(points, labels, previous_labels, weights, k):
    """Change of the per-cluster sums (k, d) when the rows of one chunk move from `previous_labels` to `labels`.

    Late iterations move few points. When at most 1/8 of the rows changed cluster, only those rows
    are gathered and multiplied. Otherwise the whole chunk goes through the one-hot product.
    """
    rows = points.shape[0]
    budget = max(1, rows // 8)
    changed = (labels != previous_labels) & (weights > 0)
    num_changed = jnp.sum(changed)

    def all_rows():
        delta = _one_hot(labels, k, weights) - _one_hot(previous_labels, k, weights)  # (rows, k)
        return delta.T @ points

    def changed_rows():
        index = jnp.nonzero(changed, size=budget, fill_value=0)[0]  # (budget,)
        valid = (jnp.arange(budget) < num_changed).astype(points.dtype)
        delta = _one_hot(labels[index], k, valid) - _one_hot(previous_labels[index], k, valid)  # (budget, k)
        return delta.T @ points[index]

    return jax.lax.cond(num_changed > budget, all_rows, changed_rows)


def _cluster_pass(
    chunks: _Chunks,
    centres: jax.Array,
    previous: ClusterPass | None = None,
    *,
    incremental: bool = True,
    with_second: bool = False,
) -> ClusterPass:
    """Assign each row of `chunks` to its nearest centre and sum the clusters, one chunk at a time.

    Without `previous`, or with `incremental=False`, the sums are built from zero with one (k, rows) @
    (rows, d) product per chunk. With `previous` (labels in chunk layout, sums and counts of the last
    pass) and `incremental`, only the rows that changed cluster are added to and subtracted from the
    previous sums. That gives the same sums up to float32 rounding.
    """
    k, d = centres.shape
    centre_sq_norms = squared_norms(centres)  # (k,)
    if previous is None:
        previous = ClusterPass(
            labels=jnp.full(chunks.weights.shape, -1, jnp.int32),
            distances=None,
            sums=jnp.zeros((k, d), centres.dtype),
            counts=jnp.zeros((k,), centres.dtype),
            inertia=None,
        )
    elif not incremental:
        previous = previous._replace(
            labels=jnp.full(chunks.weights.shape, -1, jnp.int32),
            sums=jnp.zeros((k, d), centres.dtype),
            counts=jnp.zeros((k,), centres.dtype),
        )

    def visit_chunk(totals, chunk):
        sums, counts, inertia = totals
        points, sq_norms, weights, previous_labels = chunk  # (rows, d), (rows,), (rows,), (rows,)
        distances = sq_norms[:, None] - 2.0 * (points @ centres.T) + centre_sq_norms[None, :]
        distances = jnp.maximum(distances, 0.0)  # (rows, k)
        labels = jnp.argmin(distances, axis=1).astype(jnp.int32)
        nearest = jnp.min(distances, axis=1) * weights  # (rows,)

        if incremental:
            sums = sums + _sums_change(points, labels, previous_labels, weights, k)
        else:
            sums = sums + _one_hot(labels, k, weights).T @ points
        counts_change = jnp.sum(_one_hot(labels, k, weights) - _one_hot(previous_labels, k, weights), axis=0)
        outputs = (labels, nearest)
        if with_second:
            is_own = jnp.arange(k)[None, :] == labels[:, None]
            outputs += (jnp.min(jnp.where(is_own, jnp.inf, distances), axis=1),)
        return (sums, counts + counts_change, inertia + jnp.sum(nearest)), outputs

    initial = (previous.sums, previous.counts, jnp.zeros((), centres.dtype))
    xs = (chunks.points, chunks.sq_norms, chunks.weights, previous.labels.reshape(chunks.weights.shape))
    (sums, counts, inertia), outputs = jax.lax.scan(visit_chunk, initial, xs)
    second = outputs[2].reshape(-1) if with_second else None
    return ClusterPass(outputs[0].reshape(-1), outputs[1].reshape(-1), sums, counts, inertia, second)


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
    """Run one Lloyd iteration from `centres` and return (new centres, the pass, re-seeded cluster count)."""
    n = points.shape[0]
    chunks = _split_into_chunks(points, *chunk_layout(n, chunk_rows))
    cluster_pass = _cluster_pass(chunks, centres)
    flat_points = chunks.points.reshape(-1, points.shape[1])
    weights = chunks.weights.reshape(-1)
    new_centres, reseeded = _new_centres(
        centres,
        cluster_pass.sums,
        cluster_pass.counts,
        flat_points,
        lambda: jnp.where(weights > 0, cluster_pass.distances, -1.0),  # padding rows never become centres
    )
    cluster_pass = cluster_pass._replace(labels=cluster_pass.labels[:n], distances=cluster_pass.distances[:n])
    return new_centres, cluster_pass, reseeded


class _LoopState(NamedTuple):
    iteration: jax.Array
    centres: jax.Array  # centres for the next pass
    assigned_centres: jax.Array  # centres of the last pass
    labels: jax.Array
    sums: jax.Array  # (k, d) per-cluster sums for `labels`
    counts: jax.Array  # (k,) cluster sizes for `labels`
    inertia: jax.Array
    upper: jax.Array  # (n,) bound on the distance to the own centre (skip_safe_points only)
    lower: jax.Array  # (n,) bound on the distance to every other centre (skip_safe_points only)
    done: jax.Array
    inertia_history: jax.Array
    reseed_history: jax.Array
    centre_history: jax.Array


def _new_centres(centres, sums, counts, points, own_distances):
    """Compute the cluster means, re-seed empty clusters, and return (centres, re-seed count).

    `own_distances` is a function returning the (n,) squared distance of each point to its centre,
    negative for padding rows. It runs only when a cluster is empty.
    """
    means = sums / jnp.maximum(counts, 1.0)[:, None]
    means = jnp.where(counts[:, None] > 0, means, centres)
    empty_count = jnp.sum(counts == 0).astype(jnp.int32)
    reseeded = jax.lax.cond(
        empty_count > 0,
        lambda: reseed_empty_clusters(means, counts, points, own_distances())[0],
        lambda: means,
    )
    return reseeded, empty_count


@partial(
    jax.jit,
    static_argnames=(
        "max_iter", "chunk_rows", "record_centres", "report_progress", "incremental", "skip_safe_points",
        "partial_fractions",
    ),
)  # fmt: skip
def _lloyd_loop(
    points,
    initial_centres,
    tol,
    *,
    max_iter,
    chunk_rows,
    record_centres,
    report_progress,
    incremental=True,
    skip_safe_points=True,
    partial_fractions=PARTIAL_FRACTIONS,
):
    n, d = points.shape
    k = initial_centres.shape[0]
    chunks = _split_into_chunks(points, *chunk_layout(n, chunk_rows))
    flat_points = chunks.points.reshape(-1, d)
    flat_weights = chunks.weights.reshape(-1)
    flat_sq_norms = chunks.sq_norms.reshape(-1)
    total_sq_norm = jnp.sum(flat_sq_norms * flat_weights)
    budgets = sorted({max(1, int(flat_points.shape[0] * fraction)) for fraction in partial_fractions})

    def full_pass(state: _LoopState) -> PartialPass:
        previous = ClusterPass(state.labels, None, state.sums, state.counts, None)
        result = _cluster_pass(chunks, state.centres, previous, incremental=incremental, with_second=skip_safe_points)
        upper, lower = state.upper, state.lower
        if skip_safe_points:
            upper, lower = exact_bounds(result.distances, result.second, flat_sq_norms, squared_norms(state.centres))
        changed = jnp.any((result.labels != state.labels) & (flat_weights > 0))
        return PartialPass(result.labels, result.sums, result.counts, result.inertia, upper, lower, changed)

    def own_distances(state: _LoopState):
        distances = _cluster_pass(chunks, state.centres).distances
        return jnp.where(flat_weights > 0, distances, -1.0)  # padding rows never become centres

    def iterate(state: _LoopState) -> _LoopState:
        i = state.iteration
        if skip_safe_points:
            shift = jnp.linalg.norm(state.centres - state.assigned_centres, axis=1)  # (k,)
            upper, lower = loosen_bounds(state.upper, state.lower, state.labels, shift)
            unsafe = (upper >= jnp.maximum(lower, half_gap(state.centres, state.labels))) & (flat_weights > 0)
            partial_args = (
                flat_points, flat_sq_norms, state.centres, state.labels, state.sums, state.counts,
                upper, lower, unsafe, total_sq_norm,
            )  # fmt: skip
            branches = [partial(partial_pass, *partial_args, budget) for budget in budgets]
            branches.append(lambda: full_pass(state))
            # Index of the smallest block that fits every unsafe point. len(budgets) means that none fits.
            branch = jnp.sum(jnp.sum(unsafe) > jnp.asarray(budgets))
            result = jax.lax.switch(branch, branches)
        else:
            result = full_pass(state)

        new_centres, reseeded = _new_centres(
            state.centres, result.sums, result.counts, flat_points, lambda: own_distances(state)
        )
        if report_progress:
            progress.report(i, result.inertia)

        relative_change = jnp.abs(state.inertia - result.inertia) / jnp.maximum(state.inertia, 1e-30)
        small_change = (i > 0) & (relative_change < tol)
        converged = (reseeded == 0) & (~result.changed | small_change)

        centre_history = state.centre_history
        if record_centres:
            centre_history = centre_history.at[i].set(state.centres)
        return _LoopState(
            iteration=i + 1,
            centres=new_centres,
            assigned_centres=state.centres,
            labels=result.labels,
            sums=result.sums,
            counts=result.counts,
            inertia=result.inertia,
            upper=result.upper,
            lower=result.lower,
            done=converged,
            inertia_history=state.inertia_history.at[i].set(result.inertia),
            reseed_history=state.reseed_history.at[i].set(reseeded),
            centre_history=centre_history,
        )

    history_rows = max_iter if record_centres else 0
    initial = _LoopState(
        iteration=jnp.array(0, jnp.int32),
        centres=initial_centres,
        assigned_centres=initial_centres,
        labels=jnp.full((flat_points.shape[0],), -1, jnp.int32),
        sums=jnp.zeros((k, d), points.dtype),
        counts=jnp.zeros((k,), points.dtype),
        inertia=jnp.array(jnp.inf, points.dtype),
        upper=jnp.full((flat_points.shape[0],), jnp.inf, points.dtype),
        lower=jnp.zeros((flat_points.shape[0],), points.dtype),
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
    incremental: bool = True,
    skip_safe_points: bool = True,
    on_iteration: Callable[[int, float], None] | None = None,
    timer: PhaseTimer | None = None,
) -> KMeansFit:
    """Run Lloyd's algorithm on `points` (n, d) float32 from `initial_centres` (k, d).

    Args:
        max_iter: maximum number of assignment passes, the first one at `initial_centres`.
        tol: stop when the inertia changes by less than this fraction of the previous inertia.
        record_centres: keep the centres of every iteration in `centre_history`.
        chunk_rows: rows per chunk of each pass over the data.
        incremental: update the cluster sums from the points that changed cluster only, instead of
            summing every cluster again in each iteration.
        skip_safe_points: keep distance bounds per point (`bounds`) and compute distances only for
            the points whose cluster may change; the assignments stay those of plain Lloyd.
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
        incremental=incremental,
        skip_safe_points=skip_safe_points,
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
