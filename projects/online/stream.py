"""The training stream: its order, its batches, its sections and the steps where frames are taken.

A stream is a permutation `order` of the training set: `order[p]` is the dataset index of the example
at stream position `p`. Every pass (epoch) goes through the same order.
"""

from __future__ import annotations

import jax
import numpy as np

from projects.online.config import StreamOrder

__all__ = [
    "batch_schedule",
    "examples_seen",
    "frame_steps",
    "section_bounds",
    "section_of_examples",
    "stream_order",
]


def stream_order(labels: np.ndarray, order: StreamOrder, key: jax.Array) -> np.ndarray:
    """Return the stream as dataset indices, shape (N,) int64.

    - shuffled: a uniformly random permutation drawn from `key`.
    - sorted: all examples of class 0, then class 1, ... with dataset order kept within a class
      (a stable sort by label); `key` is not used.
    - split: the examples of classes 0-4 first, then those of 5-9. Within each half the classes are
      interleaved: the half is in uniformly random order drawn from `key`, so every class of the
      half is spread over all of it.
    - classwise: one class after another, 0 to 9, each class in uniformly random order drawn from `key`.
    """
    labels = np.asarray(labels)
    # A random rank per example; sorting by (group, rank) shuffles within each group without ties.
    rank = np.asarray(jax.random.permutation(key, len(labels)))
    if order == "shuffled":
        return np.argsort(rank, kind="stable")
    if order == "sorted":
        return np.argsort(labels, kind="stable")
    if order == "split":
        return np.lexsort((rank, labels >= 5))
    if order == "classwise":
        return np.lexsort((rank, labels))
    raise ValueError(f"stream order {order!r} is invalid; use shuffled, sorted, split or classwise")


def section_bounds(n_examples: int, n_sections: int) -> np.ndarray:
    """Return the (n_sections + 1,) stream positions that delimit the sections.

    Section i covers positions bounds[i] to bounds[i + 1] - 1. Sizes differ by at most one example.
    """
    return np.arange(n_sections + 1, dtype=np.int64) * n_examples // n_sections


def section_of_examples(order: np.ndarray, n_sections: int) -> np.ndarray:
    """Return the section of every dataset index, shape (N,) int32, so `section[order[p]]` is p's section."""
    n_examples = len(order)
    position_section = np.searchsorted(section_bounds(n_examples, n_sections), np.arange(n_examples), side="right") - 1
    section = np.empty(n_examples, dtype=np.int32)
    section[order] = position_section
    return section


def batch_schedule(order: np.ndarray, batch_size: int, epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut `epochs` passes over the stream into training steps.

    Returns `indices` (steps, batch_size) int32 dataset indices and `mask` (steps, batch_size) bool.
    When the batch size does not divide the stream, the last step of each pass is padded with index 0
    and mask False, so every pass has the same steps and no example is dropped.
    """
    n_examples = len(order)
    steps_per_epoch = -(-n_examples // batch_size)
    padded = np.zeros(steps_per_epoch * batch_size, dtype=np.int32)
    padded[:n_examples] = order
    mask = np.arange(steps_per_epoch * batch_size) < n_examples

    indices = np.tile(padded.reshape(steps_per_epoch, batch_size), (epochs, 1))
    masks = np.tile(mask.reshape(steps_per_epoch, batch_size), (epochs, 1))
    return indices, masks


def frame_steps(n_steps: int, n_frames: int) -> np.ndarray:
    """Return the (n_frames + 1,) training steps after which a frame is taken: 0, evenly spaced, n_steps.

    Consecutive frames are floor(n_steps / n_frames) or that plus one steps apart.
    """
    return np.arange(n_frames + 1, dtype=np.int64) * n_steps // n_frames


def examples_seen(steps: np.ndarray, batch_size: int, n_examples: int) -> np.ndarray:
    """Return how many stream examples the model has trained on after each of `steps`, across all passes."""
    steps = np.asarray(steps, dtype=np.int64)
    steps_per_epoch = -(-n_examples // batch_size)
    epochs_done, steps_into_epoch = np.divmod(steps, steps_per_epoch)
    return epochs_done * n_examples + np.minimum(steps_into_epoch * batch_size, n_examples)
