"""Mini-batch k-means with per-centre learning rates, after Sculley, "Web-Scale K-Means Clustering" (WWW 2010).

Each step draws `batch_size` points uniformly with replacement, assigns them to the current centres,
and moves each centre c toward its points x with learning rate 1/v[c], where v[c] counts the points
the centre has received so far. Applied point by point, these rates keep every centre at the running
mean of its points, so one step per batch is exact:

    c <- c + (s - m c) / (v + m),    v <- v + m,

with m the number of batch points assigned to c and s their sum. Each iteration is one epoch of
n // batch_size steps followed by a full pass over the data. That pass gives the inertia for the
stopping rule and the history, and re-seeds every cluster that owns no point of the whole data set
from the points farthest from their centres (with its count v reset to 0).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from projects.kmeans import progress
from projects.kmeans.distances import squared_distances, squared_norms
from projects.kmeans.empty_clusters import reseed_empty_clusters
from projects.kmeans.lloyd import KMeansFit, assign
from shared_lib.experiment import PhaseTimer

__all__ = ["minibatch_kmeans", "minibatch_step"]


def minibatch_step(
    centres: jax.Array, counts: jax.Array, batch: jax.Array, batch_sq_norms: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Move `centres` (k, d) with per-centre counts `counts` (k,) toward the points of `batch` (b, d)."""
    k = centres.shape[0]
    distances = squared_distances(batch, batch_sq_norms, centres)  # (b, k)
    one_hot = jax.nn.one_hot(jnp.argmin(distances, axis=1), k, dtype=batch.dtype)  # (b, k)
    batch_counts = jnp.sum(one_hot, axis=0)  # (k,)
    batch_sums = one_hot.T @ batch  # (k, d)
    new_counts = counts + batch_counts
    # A centre without batch points keeps its place: the numerator is zero and the guard avoids 0/0.
    step = (batch_sums - batch_counts[:, None] * centres) / jnp.maximum(new_counts, 1.0)[:, None]
    return centres + step, new_counts


class _EpochState(NamedTuple):
    iteration: jax.Array
    centres: jax.Array  # centres for the next full pass
    counts: jax.Array  # (k,) v: points received per centre
    assigned_centres: jax.Array  # centres of the last full pass
    labels: jax.Array  # (n,) assignment of the last full pass
    inertia: jax.Array  # inertia of the last full pass
    done: jax.Array
    inertia_history: jax.Array
    reseed_history: jax.Array
    centre_history: jax.Array


@partial(jax.jit, static_argnames=("max_iter", "batch_size", "record_centres", "report_progress"))
def _minibatch_loop(points, initial_centres, key, tol, *, max_iter, batch_size, record_centres, report_progress):
    n, d = points.shape
    k = initial_centres.shape[0]
    steps_per_epoch = max(1, n // batch_size)
    sq_norms = squared_norms(points)

    def batch_step(step, carry):
        centres, counts, epoch_key = carry
        rows = jax.random.randint(jax.random.fold_in(epoch_key, step), (batch_size,), 0, n)
        centres, counts = minibatch_step(centres, counts, points[rows], sq_norms[rows])
        return centres, counts, epoch_key

    def run_epoch(centres, counts, epoch_key):
        centres, counts, _ = jax.lax.fori_loop(0, steps_per_epoch, batch_step, (centres, counts, epoch_key))
        return centres, counts

    def iterate(state: _EpochState) -> _EpochState:
        i = state.iteration
        full_pass = assign(points, state.centres)
        if report_progress:
            progress.report(i, full_pass.inertia)
        relative_change = jnp.abs(state.inertia - full_pass.inertia) / jnp.maximum(state.inertia, 1e-30)
        centres, reseeded = reseed_empty_clusters(state.centres, full_pass.counts, points, full_pass.distances)
        counts = jnp.where(full_pass.counts > 0, state.counts, 0.0)
        done = (i > 0) & (relative_change < tol) & (reseeded == 0)

        # The epoch after the last full pass would be discarded, so it is skipped.
        centres, counts = jax.lax.cond(
            done, lambda c, v, _: (c, v), run_epoch, centres, counts, jax.random.fold_in(key, i)
        )
        centre_history = state.centre_history
        if record_centres:
            centre_history = centre_history.at[i].set(state.centres)
        return _EpochState(
            iteration=i + 1,
            centres=centres,
            counts=counts,
            assigned_centres=state.centres,
            labels=full_pass.labels,
            inertia=full_pass.inertia,
            done=done,
            inertia_history=state.inertia_history.at[i].set(full_pass.inertia),
            reseed_history=state.reseed_history.at[i].set(reseeded),
            centre_history=centre_history,
        )

    history_rows = max_iter if record_centres else 0
    initial = _EpochState(
        iteration=jnp.array(0, jnp.int32),
        centres=initial_centres,
        counts=jnp.zeros((k,), points.dtype),
        assigned_centres=initial_centres,
        labels=jnp.zeros((n,), jnp.int32),
        inertia=jnp.array(jnp.inf, points.dtype),
        done=jnp.array(False),
        inertia_history=jnp.zeros((max_iter,), points.dtype),
        reseed_history=jnp.zeros((max_iter,), jnp.int32),
        centre_history=jnp.zeros((history_rows, k, d), points.dtype),
    )
    return jax.lax.while_loop(lambda s: (s.iteration < max_iter) & ~s.done, iterate, initial)


def minibatch_kmeans(
    points: jax.Array,
    initial_centres: jax.Array,
    key: jax.Array,
    *,
    batch_size: int,
    max_iter: int,
    tol: float,
    record_centres: bool = False,
    on_iteration: Callable[[int, float], None] | None = None,
    timer: PhaseTimer | None = None,
) -> KMeansFit:
    """Run mini-batch k-means on `points` (n, d) float32 from `initial_centres` (k, d).

    Args:
        key: PRNG key for drawing the batches.
        batch_size: points per mini-batch.
        max_iter: maximum number of full passes; an epoch of n // batch_size steps follows each one
            that does not stop the run.
        tol: stop when the full-pass inertia changes by less than this fraction of the previous one.
        record_centres: keep the centres of every full pass in `centre_history`.
        on_iteration: called with (iteration, inertia) after each full pass, for progress.
        timer: when given, compilation is timed as its "compile" phase and the loop as "fit".
    """
    tol = jnp.asarray(tol, points.dtype)
    loop = partial(
        _minibatch_loop,
        max_iter=max_iter,
        batch_size=batch_size,
        record_centres=record_centres,
        report_progress=on_iteration is not None,
    )
    if timer is not None:
        with timer.phase("compile"):
            loop = loop.func.lower(points, initial_centres, key, tol, **loop.keywords).compile()
    fit_phase = timer.phase("fit") if timer is not None else contextlib.nullcontext()
    with progress.reporting_to(on_iteration), fit_phase:
        state = jax.block_until_ready(loop(points, initial_centres, key, tol))

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
