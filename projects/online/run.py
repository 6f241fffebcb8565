"""One run of the online experiment: data, compiled training, frame evaluation, figures and artifacts.

`run(config)` is what `train.py` calls; a notebook can call it too and re-plot the returned arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import resource
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from tqdm import tqdm

from projects.online import animation, plots
from projects.online.compilation import CompileWatcher
from projects.online.config import OnlineConfig
from projects.online.evaluation import evaluate_snapshots, segment_accuracy
from projects.online.model import MLPParams, logits, scale_images
from projects.online.stream import (
    batch_schedule,
    examples_seen,
    frame_steps,
    section_bounds,
    section_of_examples,
    stream_order,
)
from projects.online.summaries import Divergence, FrameSummary, divergence, seen_sections, summarize_frames
from projects.online.training import init_state, make_train_chunk, train_with_snapshots
from shared_lib import media
from shared_lib.datasets import load_supervised_1d
from shared_lib.experiment import PhaseTimer, capture_run_log, new_run_id, package_versions
from shared_lib.random_utils import infinite_safe_keys

__all__ = ["RunResults", "divergence_message", "run"]

logger = logging.getLogger(__name__)

N_SAMPLE_PREDICTIONS = 24
FIGURE_DPI = 150


class RunResults(NamedTuple):
    """Everything a run measured, as NumPy arrays and plain numbers.

    F is config.frames, S is config.sections, T the training examples in the whole run (passes included).
    """

    run_id: str
    config: OnlineConfig
    accuracy: np.ndarray  # (F + 1, S) A[frame, section], NaN where the model had non-finite weights
    test_accuracy: np.ndarray  # (F + 1,)
    frame_steps: np.ndarray  # (F + 1,) training steps taken at each frame
    frame_examples: np.ndarray  # (F + 1,) stream examples trained on at each frame, across passes
    section_bounds: np.ndarray  # (S + 1,) stream positions delimiting the sections
    summary: FrameSummary
    prequential_loss: np.ndarray  # (T,) loss in nats on each example before training on it, stream order
    prequential_correct: np.ndarray  # (T,) bool
    divergence: Divergence
    final_test_accuracy: float
    timings: dict[str, float]  # seconds per phase
    peak_memory_mb: float  # peak resident memory of the process so far (ru_maxrss)
    artifacts: dict[str, str]  # artifact name -> URL or local path


def run(config: OnlineConfig, show_progress: bool | None = None) -> RunResults:
    """Train, evaluate, draw and save one run; return its results.

    `show_progress` defaults to a progress bar when stderr is a terminal and config.quiet is off.
    Logging goes to this module's logger; a copy of every INFO record of the run is saved as run.log.
    """
    run_id = new_run_id("online")
    if show_progress is None:
        show_progress = not config.quiet and sys.stderr.isatty()
    with (
        tempfile.TemporaryDirectory(prefix="seewhy-online-") as temp_dir,
        capture_run_log(Path(temp_dir) / "run.log", ["projects.online", "shared_lib"]) as log_path,
    ):
        logger.info("Run %s with %s", run_id, config)
        results = _run(config, run_id, show_progress)
        results.artifacts["run log"] = media.save_media(f"{run_id}/run.log", log_path, "text/plain")
    return results


def _run(config: OnlineConfig, run_id: str, show_progress: bool) -> RunResults:
    timer = PhaseTimer()
    with CompileWatcher() as watcher:
        with timer.phase("data"):
            data = load_supervised_1d("mnist", n_tr=config.n_train, n_tst=config.n_test)
            labels = np.asarray(data.y)
        logger.info("Loaded %d training and %d test examples", data.n_samples, len(data.y_test))

        # Stream, batches and frame positions.
        key_params, key_stream = next(infinite_safe_keys(config.seed)).split(2)
        order = stream_order(labels, config.order, key_stream.get())
        indices, mask = batch_schedule(order, config.batch_size, config.epochs)
        steps_at_frames = frame_steps(config.n_steps, config.frames)
        seen_at_frames = examples_seen(steps_at_frames, config.batch_size, data.n_samples)

        with _compile_time_moved(timer, "training", watcher):
            state, snapshots, metrics = _train(
                config, data, key_params.get(), indices, mask, steps_at_frames, show_progress
            )
        with _compile_time_moved(timer, "frame evaluation", watcher):
            segment_acc = _evaluate(config, data, order, snapshots, show_progress)

    accuracy, test_accuracy = segment_acc[:, :-1], segment_acc[:, -1]
    bounds = section_bounds(data.n_samples, config.sections)
    summary = summarize_frames(accuracy, seen_sections(seen_at_frames, data.n_samples, config.sections))
    flat_mask = mask.reshape(-1)
    loss = np.asarray(metrics.loss).reshape(-1)[flat_mask]
    correct = np.asarray(metrics.correct).reshape(-1)[flat_mask]
    diverged = divergence(np.asarray(metrics.loss), mask, config.divergence_loss)
    _log_outcome(config, test_accuracy, loss, correct, diverged)

    results = RunResults(
        run_id=run_id,
        config=config,
        accuracy=accuracy,
        test_accuracy=test_accuracy,
        frame_steps=steps_at_frames,
        frame_examples=seen_at_frames,
        section_bounds=bounds,
        summary=summary,
        prequential_loss=loss,
        prequential_correct=correct,
        divergence=diverged,
        final_test_accuracy=float(test_accuracy[-1]),
        timings=timer.seconds,
        peak_memory_mb=0.0,
        artifacts={},
    )

    with timer.phase("figures"):
        _save_figures(results, state.params, data)
    if config.animation:
        with timer.phase("animation"):
            frames = animation.section_frames(results)
            results.artifacts["animation"] = media.save_animation(f"{run_id}/sections.mp4", frames, fps=config.fps)

    results = results._replace(peak_memory_mb=_peak_memory_mb(), timings=dict(timer.seconds))
    results.artifacts["metrics"] = media.save_media(
        f"{run_id}/metrics.json", json.dumps(metrics_record(results), indent=1).encode(), "application/json"
    )
    logger.info("Timings in seconds: %s", {name: round(seconds, 2) for name, seconds in results.timings.items()})
    return results


def _train(config: OnlineConfig, data, key: jax.Array, indices, mask, steps_at_frames, show_progress: bool):
    """Train through the whole schedule; return the final state, the stacked snapshots and the metrics."""
    optimizer = optax.adam(config.lr)
    state = init_state(key, data.d_x, config.hidden, data.d_y, optimizer)
    train_chunk = make_train_chunk(optimizer)
    with _progress(show_progress, config.n_steps, "training", "step") as bar:
        state, snapshots, metrics = train_with_snapshots(
            train_chunk, state, data.X, data.y, indices, mask, steps_at_frames,
            on_chunk=lambda steps_done: bar.update(steps_done - bar.n),
        )
        jax.block_until_ready(metrics)
    return state, snapshots, metrics


def _evaluate(config: OnlineConfig, data, order: np.ndarray, snapshots: MLPParams, show_progress: bool) -> np.ndarray:
    """Return the accuracy (F + 1, S + 1) of every snapshot on every section, with the test set last."""
    sections = section_of_examples(order, config.sections)
    images = jnp.concatenate([data.X, data.X_test])
    labels = jnp.concatenate([data.y, data.y_test])
    segments = np.concatenate([sections, np.full(len(data.y_test), config.sections, np.int32)])
    with _progress(show_progress, None, "evaluating frames", "chunk") as bar:
        counts = evaluate_snapshots(
            snapshots, images, labels, segments, config.sections + 1,
            on_chunk=lambda done, total: _advance(bar, done, total),
        )
    segment_sizes = np.bincount(segments, minlength=config.sections + 1)
    return segment_accuracy(counts, segment_sizes, np.asarray(_finite_snapshots(snapshots)))


def _save_figures(results: RunResults, final_params: MLPParams, data) -> None:
    run_id = results.run_id
    sample_images = np.asarray(data.X_test[:N_SAMPLE_PREDICTIONS])
    sample_probs = np.asarray(jax.nn.softmax(logits(final_params, scale_images(jnp.asarray(sample_images)))))
    figures = {
        "training progress": ("progress.png", plots.progress_figure(results)),
        "final section accuracy": ("final_sections.png", plots.final_sections_figure(results)),
        "accuracy heatmap": ("heatmap.png", plots.heatmap_figure(results)),
        "frame summary": ("frame_summary.png", plots.frame_summary_figure(results)),
        "sample predictions": (
            "sample_predictions.png",
            plots.sample_predictions_figure(sample_images, np.asarray(data.y_test[: len(sample_images)]), sample_probs),
        ),
    }
    for name, (filename, fig) in figures.items():
        results.artifacts[name] = media.save_matplotlib_figure(f"{run_id}/{filename}", fig, dpi=FIGURE_DPI)
        plt.close(fig)


@jax.jit
def _finite_snapshots(snapshots: MLPParams) -> jax.Array:
    """Return (F + 1,) bool: whether every parameter of each snapshot is finite."""
    leaves = [jnp.all(jnp.isfinite(leaf.reshape(leaf.shape[0], -1)), axis=1) for leaf in snapshots]
    return jnp.all(jnp.stack(leaves), axis=0)


@contextlib.contextmanager
def _compile_time_moved(timer: PhaseTimer, phase: str, watcher: CompileWatcher) -> Iterator[None]:
    """Time `phase`, but book the compilation that happens inside it under "compile" instead."""
    compile_before = watcher.seconds
    with timer.phase(phase):
        yield
    compiled = watcher.seconds - compile_before
    timer.seconds[phase] -= compiled
    timer.seconds["compile"] = timer.seconds.get("compile", 0.0) + compiled


def _log_outcome(config, test_accuracy, loss, correct, diverged: Divergence) -> None:
    logger.info(
        "Final test accuracy %.4f; prequential accuracy %.4f, mean prequential loss %.4f nats",
        test_accuracy[-1], correct.mean(), np.mean(loss),
    )
    if diverged.diverged:
        logger.warning("%s", divergence_message(diverged, config.divergence_loss))


def divergence_message(diverged: Divergence, threshold: float) -> str:
    """Describe how a diverged run diverged: a finite loss above `threshold` first, or a non-finite loss."""
    if diverged.nonfinite_step is None:
        return (
            f"Training diverged: the prequential loss exceeded the {threshold:g}-nat threshold at step "
            f"{diverged.step:,} ({diverged.loss:.4g} nats) and stayed finite throughout the run"
        )
    if diverged.nonfinite_step == diverged.step:
        return f"Training diverged: the prequential loss became non-finite at step {diverged.step:,}"
    return (
        f"Training diverged: the prequential loss exceeded the {threshold:g}-nat threshold at step "
        f"{diverged.step:,} ({diverged.loss:.4g} nats) while finite, and became non-finite at step "
        f"{diverged.nonfinite_step:,}"
    )


def _peak_memory_mb() -> float:
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _advance(bar: tqdm, done: int, total: int) -> None:
    if bar.total != total:
        bar.reset(total=total)
    bar.update(done - bar.n)


@contextlib.contextmanager
def _progress(enabled: bool, total: int | None, description: str, unit: str) -> Iterator[tqdm]:
    with tqdm(total=total, desc=description, unit=unit, disable=not enabled, leave=False) as bar:
        yield bar


def metrics_record(results: RunResults) -> dict[str, Any]:
    """Return the JSON-ready record of a run: config, versions, timings, every summary and the matrix A.

    NaN and infinite values become null.
    """
    summary = results.summary
    record = {
        "run_id": results.run_id,
        "config": dataclasses.asdict(results.config),
        "package_versions": package_versions(),
        "timings_seconds": results.timings,
        "peak_memory_mb": results.peak_memory_mb,
        "n_examples": int(results.section_bounds[-1]),
        "frame_steps": results.frame_steps,
        "frame_examples": results.frame_examples,
        "section_bounds": results.section_bounds,
        "final_test_accuracy": results.final_test_accuracy,
        "test_accuracy": results.test_accuracy,
        "prequential": {
            "accuracy": float(np.mean(results.prequential_correct)),
            "mean_loss_nats": float(np.mean(results.prequential_loss)),
        },
        "section_accuracy_summary": {
            "mean": summary.mean,
            "std": summary.std,
            "min": summary.min,
            "median": summary.median,
            "max": summary.max,
            "seen_mean": summary.seen_mean,
            "unseen_mean": summary.unseen_mean,
        },
        "forgetting": summary.forgetting,
        "mean_forgetting": summary.mean_forgetting,
        "divergence": results.divergence._asdict(),
        "accuracy": results.accuracy,
        "artifacts": dict(results.artifacts),
    }
    return _json_ready(record)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
