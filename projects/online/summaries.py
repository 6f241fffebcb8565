"""Numbers that summarise the frame-by-section accuracy matrix A[frame, section]."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from projects.online.stream import section_bounds

__all__ = ["FrameSummary", "divergence", "Divergence", "seen_sections", "summarize_frames"]


class FrameSummary(NamedTuple):
    """Statistics of the section accuracies per frame (F + 1,) and per section (S,).

    A frame whose accuracies are NaN (the model had non-finite weights) has NaN statistics.
    """

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    median: np.ndarray
    max: np.ndarray
    seen_mean: np.ndarray  # mean over seen sections, NaN when none is seen yet
    unseen_mean: np.ndarray  # mean over the other sections, NaN when all are seen
    forgetting: np.ndarray  # (S,) best accuracy over all frames minus the final accuracy
    mean_forgetting: float


class Divergence(NamedTuple):
    """The first bad training steps of a run; each step is None when no such step occurred."""

    diverged: bool
    step: int | None  # first step (0-based) with a prequential loss above the threshold or non-finite
    loss: float | None  # the largest loss of that step's batch, in nats (NaN if one was NaN)
    nonfinite_step: int | None  # first step with a NaN or infinite loss


def seen_sections(examples_seen: np.ndarray, n_examples: int, n_sections: int) -> np.ndarray:
    """Return (F + 1, S) bool: whether the model had trained on every example of the section at each frame."""
    ends = section_bounds(n_examples, n_sections)[1:]
    return np.asarray(examples_seen)[:, None] >= ends[None, :]


def _masked_row_mean(accuracy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    counts = mask.sum(axis=1)
    sums = np.where(mask, accuracy, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def summarize_frames(accuracy: np.ndarray, seen: np.ndarray) -> FrameSummary:
    """Summarise accuracy (F + 1, S) given the seen mask (F + 1, S) from `seen_sections`."""
    accuracy = np.asarray(accuracy, dtype=np.float64)
    defined = ~np.isnan(accuracy)
    # Best accuracy per section over the frames where the model was defined; NaN if it never was.
    best = np.where(defined.any(axis=0), np.max(np.where(defined, accuracy, -np.inf), axis=0), np.nan)
    forgetting = best - accuracy[-1]
    return FrameSummary(
        mean=accuracy.mean(axis=1),
        std=accuracy.std(axis=1),
        min=accuracy.min(axis=1),
        median=np.median(accuracy, axis=1),
        max=accuracy.max(axis=1),
        seen_mean=_masked_row_mean(accuracy, seen),
        unseen_mean=_masked_row_mean(accuracy, ~seen),
        forgetting=forgetting,
        mean_forgetting=float(forgetting.mean()),
    )


def divergence(losses: np.ndarray, mask: np.ndarray, threshold: float) -> Divergence:
    """Find the first training step whose prequential loss is bad; losses and mask are (steps, B).

    A loss is bad when it is NaN, infinite or above `threshold` nats; padding (mask False) is ignored.
    With Adam a too-large learning rate often keeps the loss finite but huge (above 1e5 nats with
    lr 10 on MNIST), so the threshold catches those runs too.
    """
    losses = np.asarray(losses)
    mask = np.asarray(mask, dtype=bool)
    nonfinite = ~np.isfinite(losses) & mask
    too_large = np.nan_to_num(losses, nan=0.0, posinf=0.0, neginf=0.0) > threshold
    bad_rows = np.nonzero((nonfinite | (too_large & mask)).any(axis=1))[0]
    if len(bad_rows) == 0:
        return Divergence(False, None, None, None)
    step = int(bad_rows[0])
    nonfinite_rows = np.nonzero(nonfinite.any(axis=1))[0]
    row = losses[step][mask[step]]
    worst = float(row[np.argmax(np.where(np.isnan(row), np.inf, row))])
    return Divergence(
        diverged=True,
        step=step,
        loss=worst,
        nonfinite_step=int(nonfinite_rows[0]) if len(nonfinite_rows) else None,
    )
