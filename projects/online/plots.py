"""Static figures of a run; each function takes the run's results and returns a matplotlib Figure.

All of them accept NaN accuracies and losses (a diverged run) and leave those points blank.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from projects.online.run import RunResults

__all__ = [
    "CountAxis",
    "accuracy_limits",
    "count_axis",
    "final_sections_figure",
    "frame_summary_figure",
    "heatmap_figure",
    "moving_average",
    "progress_figure",
    "sample_predictions_figure",
    "stream_position",
]

SMOOTHING_POINTS = 200  # the progress curves average over windows of about 1/200 of the run
PLAIN_COUNT_LIMIT = 5000  # axes of fewer examples than this are in examples, longer ones in thousands
FEW_POINTS = 50  # curves with fewer points than this get markers, so a single point stays visible
ACCURACY_MARGIN = 0.02  # space below the lowest accuracy of final_sections.png


class CountAxis(NamedTuple):
    """The scale of an axis of example counts."""

    divisor: float  # 1 or 1000
    unit: str  # "examples" or "thousands of examples"


def count_axis(largest: float) -> CountAxis:
    """Return the scale for an axis of example counts from 0 to `largest`: thousands from PLAIN_COUNT_LIMIT on."""
    if largest < PLAIN_COUNT_LIMIT:
        return CountAxis(1.0, "examples")
    return CountAxis(1000.0, "thousands of examples")


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Return the trailing means of `window` consecutive values, (len - window + 1,); NaN propagates."""
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(values, dtype=np.float64))])
    with np.errstate(invalid="ignore"):
        return (cumulative[window:] - cumulative[:-window]) / window


def stream_position(examples_seen: np.ndarray, n_examples: int) -> np.ndarray:
    """Return the position within the current pass, 0..n_examples; a finished pass reads n_examples."""
    examples_seen = np.asarray(examples_seen)
    return np.where(examples_seen == 0, 0, (examples_seen - 1) % n_examples + 1)


def _scaled(values: np.ndarray, axis: CountAxis) -> np.ndarray:
    return np.asarray(values, dtype=np.float64) / axis.divisor


def _integer_ticks(matplotlib_axis, axis: CountAxis) -> None:
    """Put ticks on whole examples only, so an axis from 0 to 1 example shows no fractional ticks."""
    if axis.divisor == 1:
        matplotlib_axis.set_major_locator(MaxNLocator(integer=True))


def accuracy_limits(*arrays: np.ndarray) -> tuple[float, float]:
    """Return y-axis limits (lower, 1.005) that show every finite accuracy in `arrays`.

    The lower limit is the minimum less ACCURACY_MARGIN, at least 0, and 0 when no value is finite.
    """
    values = np.concatenate([np.ravel(a) for a in arrays]).astype(np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return 0.0, 1.005
    return max(0.0, float(values.min()) - ACCURACY_MARGIN), 1.005


def _accuracy_floor(*arrays: np.ndarray) -> float:
    """Return a lower axis limit: the 2nd percentile of the finite values rounded down to 0.1, at least 0."""
    values = np.concatenate([np.ravel(a) for a in arrays]).astype(np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return 0.0
    return max(0.0, np.floor(np.percentile(values, 2) * 10) / 10)


def _mark_divergence(ax, results: RunResults, axis: CountAxis) -> None:
    if results.divergence.diverged:
        step = results.divergence.step
        ax.axvline(
            _scaled(step * results.config.batch_size, axis), color="crimson", linestyle=":",
            label=f"diverged at step {step:,}",
        )


def progress_figure(results: RunResults) -> Figure:
    """Prequential loss and accuracy (each example predicted before training on it), smoothed."""
    loss, correct = results.prequential_loss, results.prequential_correct
    window = max(1, len(loss) // SMOOTHING_POINTS)
    axis = count_axis(len(loss))
    x = _scaled(np.arange(window, len(loss) + 1), axis)
    # A short run gives too few points for a line, and a single point draws nothing without a marker.
    style = {"marker": "o", "markersize": 4, "clip_on": False} if len(x) < FEW_POINTS else {}

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    ax_loss.plot(x, moving_average(loss, window), color="tab:blue", **style)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("prequential cross-entropy (nats, log scale)")
    ax_acc.plot(x, moving_average(correct, window), color="tab:green", **style)
    ax_acc.set_ylim(0, 1)
    ax_acc.set_ylabel("prequential accuracy")
    nonfinite_step = results.divergence.nonfinite_step
    if nonfinite_step is not None:
        ax_loss.text(0.98, 0.95, f"loss NaN or infinite from step {nonfinite_step:,} on", transform=ax_loss.transAxes,
                     ha="right", va="top", color="crimson")
    for ax in (ax_loss, ax_acc):
        ax.set_xlim(0, _scaled(len(loss), axis))
        ax.set_xlabel(f"training progress ({axis.unit} seen)")
        _integer_ticks(ax.xaxis, axis)
        ax.grid(alpha=0.3)
        _mark_divergence(ax, results, axis)
        if results.divergence.diverged:
            ax.legend(loc="best")
    smoothing = "not smoothed" if window == 1 else f"moving mean over {window:,} examples"
    fig.suptitle(f"Predict, then learn: loss and accuracy on each example before training on it ({smoothing})")
    return fig


def final_sections_figure(results: RunResults) -> Figure:
    """Final accuracy of every section beside the best it ever reached; the gap is forgetting."""
    axis = count_axis(results.section_bounds[-1])
    edges = _scaled(results.section_bounds, axis)
    final = results.accuracy[-1]
    best = final + results.summary.forgetting

    # Each section is drawn flat over its whole extent [start, end), the first and last included.
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    ax.fill_between(edges, np.append(final, final[-1]), np.append(best, best[-1]), step="post", color="tab:red",
                    alpha=0.25, label="forgetting (best - final)")
    ax.stairs(best, edges, baseline=None, color="tab:red", linewidth=0.8, label="best accuracy over all frames")
    ax.stairs(final, edges, baseline=None, color="tab:blue", linewidth=1.5, label="final accuracy")
    ax.axhline(results.final_test_accuracy, color="black", linestyle="--", linewidth=1,
               label=f"final test accuracy {results.final_test_accuracy:.4f}")
    ax.set_xlim(0, edges[-1])
    ax.set_ylim(accuracy_limits(final, best, [results.final_test_accuracy]))
    ax.set_xlabel(f"stream position ({axis.unit}), {len(final)} sections")
    _integer_ticks(ax.xaxis, axis)
    ax.set_ylabel("accuracy on the section")
    ax.set_title(
        f"Accuracy on each part of the stream after training ({results.config.order} order); "
        f"mean forgetting {results.summary.mean_forgetting:.4f}"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return fig


def heatmap_figure(results: RunResults) -> Figure:
    """A[frame, section] as an image: stream position across, training progress up."""
    n_examples = int(results.section_bounds[-1])
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgray")
    # Colours start at the 2nd percentile (rounded down to 0.1) so a run that stays above 0.9 still shows detail.
    floor = _accuracy_floor(results.accuracy)

    # Row k is centred on the examples seen at frame k; columns are the exact section bounds.
    x_axis = count_axis(n_examples)
    y_axis = count_axis(results.frame_examples[-1])
    seen = _scaled(results.frame_examples, y_axis)
    row_edges = np.concatenate([[seen[0]], (seen[:-1] + seen[1:]) / 2, [seen[-1]]])
    fig, ax = plt.subplots(figsize=(9, 6.5), layout="constrained")
    image = ax.pcolormesh(
        _scaled(results.section_bounds, x_axis), row_edges, np.ma.masked_invalid(results.accuracy),
        cmap=cmap, vmin=floor, vmax=1, rasterized=True,
    )
    line_x, line_y = _position_line(results.frame_examples, n_examples)
    ax.plot(_scaled(line_x, x_axis), _scaled(line_y, y_axis), color="white", linestyle="--", linewidth=1.5,
            label="stream position (examples trained on)")
    ax.set_xlabel(f"stream position of the section ({x_axis.unit})")
    ax.set_ylabel(f"training progress at the frame ({y_axis.unit} seen)")
    _integer_ticks(ax.xaxis, x_axis)
    _integer_ticks(ax.yaxis, y_axis)
    ax.set_title(f"Accuracy on every section of the stream, frame by frame ({results.config.order} order)")
    ax.legend(loc="upper left", framealpha=0.8)
    label = "accuracy on the section"
    if np.isnan(results.accuracy).any():
        label += " (gray: undefined, weights non-finite)"
    fig.colorbar(image, ax=ax, extend="min" if floor > 0 else "neither", label=label)
    return fig


def _position_line(examples_seen: np.ndarray, n_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """Return x (stream position) and y (examples seen), in examples, for the stream-position line.

    Each pass gets its own segment from position 0, and NaN separates the segments so the line
    does not cross the image when a new pass starts.
    """
    xs, ys = [], []
    previous = 0
    for seen in np.asarray(examples_seen):
        position = stream_position(seen, n_examples)
        if position < previous:
            xs += [np.nan, 0]
            ys += [np.nan, seen - position]
        xs.append(position)
        ys.append(seen)
        previous = position
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def frame_summary_figure(results: RunResults) -> Figure:
    """Per-frame statistics of the section accuracies, seen against unseen sections, and test accuracy."""
    summary = results.summary
    axis = count_axis(results.frame_examples[-1])
    x = _scaled(results.frame_examples, axis)

    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    ax.fill_between(x, summary.min, summary.max, color="tab:blue", alpha=0.15, label="min to max over sections")
    ax.plot(x, summary.median, color="tab:blue", linestyle=":", label="median over sections")
    ax.plot(x, summary.seen_mean, color="tab:orange", label="mean over seen sections")
    ax.plot(x, summary.unseen_mean, color="tab:purple", label="mean over not yet seen sections")
    ax.plot(x, results.test_accuracy, color="black", linestyle="--", label="test accuracy")
    # The mean often coincides with the seen or unseen mean, so it goes on top, thick and dashed, and a line
    # under it shows through the gaps.
    ax.plot(x, summary.mean, color="navy", linewidth=2.2, linestyle=(0, (5, 2)), zorder=4, label="mean over sections")
    _mark_divergence(ax, results, axis)
    ax.set_xlim(0, x[-1])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"training progress ({axis.unit} seen)")
    _integer_ticks(ax.xaxis, axis)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Section accuracy over training ({results.config.order} order)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def sample_predictions_figure(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> Figure:
    """Test images with the final model's prediction and its probability; wrong ones in red.

    images: (N, 784) uint8, labels: (N,), probabilities: (N, 10).
    """
    columns = 8
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.6 * rows), layout="constrained")
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, image, label, probs in zip(np.ravel(axes), images, labels, probabilities):
        predicted = int(np.argmax(probs)) if np.all(np.isfinite(probs)) else None
        ax.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0, vmax=255)
        if predicted is None:
            title, color = f"undefined\n(true {label})", "crimson"
        else:
            title = f"{predicted} ({probs[predicted]:.2f})\ntrue {label}"
            color = "black" if predicted == label else "crimson"
        ax.set_title(title, fontsize=9, color=color)
    fig.suptitle("Final model on the first test images: prediction (probability), true label")
    return fig
