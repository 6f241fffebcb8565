"""Benchmark the default online run against a conventional implementation of the same experiment.

    flock /tmp/seewhy-bench.lock uv run python projects/online/bench.py

Everything runs in this process. First the default config (60,000 examples at batch size 1,
100 frames x 100 sections, shuffled) goes through `run()`, for its phases, wall time and peak memory.
Then each expensive part is timed beside a conventional implementation of it, as a first version
of this experiment usually looks:

- training: a jitted Adam step called from a Python loop once per example, reading each loss back
  with float(), against `train_chunk` scanning 600 steps per call;
- frame evaluation: a jitted accuracy function called once per section and once for the test set,
  against `evaluate_snapshots` on 101 stacked snapshots;
- animation frames: a new matplotlib figure drawn for every frame, against `section_frames`.

The two sides alternate for --rounds rounds, and the report gives per-round medians and the median
of the per-round ratios, because other jobs on the machine change its speed from minute to minute.
The conventional side runs on a part of the workload (--conventional-steps steps, --conventional-frames
frames) and is extrapolated linearly. That is valid because its cost per step and per frame does not
depend on where in the run it is measured. Takes about 2 minutes. Needs MNIST in $SEEWHY_DATA_DIR/mnist/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from projects.online import animation
from projects.online.config import OnlineConfig
from projects.online.evaluation import evaluate_snapshots
from projects.online.model import example_losses, init_params, logits
from projects.online.run import RunResults, run
from projects.online.stream import batch_schedule, section_bounds, section_of_examples, stream_order
from projects.online.training import init_state, make_train_chunk
from shared_lib.datasets import load_supervised_1d
from shared_lib.experiment import package_versions


def _peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def time_fast_run(config: OnlineConfig) -> tuple[RunResults, float, float]:
    """Return the results of run(config), its wall seconds and the peak memory (MiB) right after it."""
    start = time.perf_counter()
    results = run(config, show_progress=False)
    return results, time.perf_counter() - start, _peak_memory_mb()


def time_fast_frames(results: RunResults) -> float:
    """Return the seconds this implementation takes to render the animation frames, without encoding."""
    start = time.perf_counter()
    for _ in animation.section_frames(results):
        pass
    return time.perf_counter() - start


def conventional_training(images: np.ndarray, labels: np.ndarray, order: np.ndarray, steps: int, lr: float) -> float:
    """Return seconds per step of a jitted Adam step called once per example from Python."""
    optimizer = optax.adam(lr)
    params = init_params(jax.random.key(0), images.shape[1], 128, 10)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        def objective(p):
            losses, batch_logits = example_losses(p, x, y)
            return losses.mean(), batch_logits

        (loss, batch_logits), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, jnp.argmax(batch_logits[0]) == y[0]

    def one(index):
        x = images[index : index + 1].astype(np.float32) / 255.0
        return step(params, opt_state, x, labels[index : index + 1])

    one(order[0])  # compile outside the timing
    losses, correct = [], []
    start = time.perf_counter()
    for index in order[:steps]:
        params, opt_state, loss, hit = one(index)
        losses.append(float(loss))
        correct.append(bool(hit))
    return (time.perf_counter() - start) / steps


def conventional_evaluation(results: RunResults, images, labels, test_images, test_labels, order, frames: int) -> float:
    """Return seconds per frame of evaluating every section, then the test set, one call each."""
    n_sections = results.config.sections
    bounds = section_bounds(len(order), n_sections)
    stream_images = images[order].astype(np.float32) / 255.0
    stream_labels = labels[order]
    test_x = test_images.astype(np.float32) / 255.0
    params = init_params(jax.random.key(0), images.shape[1], 128, 10)

    @jax.jit
    def accuracy(params, x, y):
        return jnp.mean(jnp.argmax(logits(params, x), axis=-1) == y)

    def frame():
        section_accuracy = [
            float(accuracy(params, stream_images[bounds[i] : bounds[i + 1]], stream_labels[bounds[i] : bounds[i + 1]]))
            for i in range(n_sections)
        ]
        return section_accuracy, float(accuracy(params, test_x, test_labels))

    frame()  # compile outside the timing
    start = time.perf_counter()
    for _ in range(frames):
        frame()
    return (time.perf_counter() - start) / frames


def conventional_animation_frames(results: RunResults, frames: int) -> float:
    """Return seconds per animation frame when each frame is a new matplotlib figure."""
    bounds = results.section_bounds / 1000.0
    start = time.perf_counter()
    for k in range(frames):
        fig, ax = plt.subplots(figsize=animation.FRAME_SIZE_INCHES, dpi=animation.FRAME_DPI, layout="constrained")
        position = results.frame_examples[k] / 1000.0
        ax.axvspan(0, position, color="tab:orange", alpha=0.15, label="seen sections")
        ax.stairs(results.accuracy[k], bounds, baseline=None, label="accuracy on the section")
        ax.axvline(position, color="crimson", label="stream position")
        ax.axhline(results.test_accuracy[k], color="black", linestyle="--", label="test accuracy")
        ax.set_xlim(0, bounds[-1])
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("stream position (thousands of examples)")
        ax.set_ylabel("accuracy on the section")
        ax.set_title(f"frame {k}: test accuracy {results.test_accuracy[k]:.4f}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        fig.canvas.draw()
        np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        plt.close(fig)
    return (time.perf_counter() - start) / frames


def fast_training(train_chunk, state, images, labels, indices: np.ndarray, mask: np.ndarray, chunk: int = 600) -> float:
    """Return seconds per step of `train_chunk` scanning `chunk` steps per call over all rows of `indices`.

    `train_chunk` should already be compiled for `chunk` steps: the first runs of a freshly compiled
    executable were up to 2x slower in trials, which would bias the comparison.
    """
    start = time.perf_counter()
    for first in range(0, len(indices), chunk):
        state, _ = train_chunk(state, images, labels, indices[first : first + chunk], mask[first : first + chunk])
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / len(indices)


def fast_evaluation(snapshots, images, labels, segments: np.ndarray, n_segments: int) -> float:
    """Return seconds per frame of `evaluate_snapshots` on stacked snapshots (one per frame)."""
    start = time.perf_counter()
    evaluate_snapshots(snapshots, images, labels, segments, n_segments)
    return (time.perf_counter() - start) / snapshots.w1.shape[0]


def _median(values: list[float]) -> float:
    return float(np.median(values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per comparison (default: %(default)s)")
    parser.add_argument("--conventional-steps", type=int, default=2000,
                        help="training steps timed per round for the conventional loop (default: %(default)s)")
    parser.add_argument("--conventional-frames", type=int, default=4,
                        help="frames timed per round for the conventional evaluation and animation (default: %(default)s)")
    args = parser.parse_args(argv)

    config = OnlineConfig(quiet=True)
    load_before = os.getloadavg()[0]
    results, run_wall, run_peak_mb = time_fast_run(config)
    n_frames = config.frames + 1

    data = load_supervised_1d("mnist")
    images, labels = np.asarray(data.X), np.asarray(data.y)
    test_images, test_labels = np.asarray(data.X_test), np.asarray(data.y_test)
    order = stream_order(labels, "shuffled", jax.random.key(0))
    eval_images = jnp.concatenate([data.X, data.X_test])
    eval_labels = jnp.concatenate([data.y, data.y_test])
    eval_segments = np.concatenate(
        [section_of_examples(order, config.sections), np.full(len(test_labels), config.sections, np.int32)]
    )

    # Compile the fast side once, outside the timed rounds.
    optimizer = optax.adam(config.lr)
    train_chunk = make_train_chunk(optimizer)
    state = init_state(jax.random.key(0), images.shape[1], config.hidden, 10, optimizer)
    indices, mask = batch_schedule(order, 1, 1)
    indices, mask = indices[:6000], mask[:6000]
    fast_training(train_chunk, state, data.X, data.y, indices, mask)
    params = [init_params(jax.random.key(i), images.shape[1], config.hidden, 10) for i in range(n_frames)]
    snapshots = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
    fast_evaluation(snapshots, eval_images, eval_labels, eval_segments, config.sections + 1)

    rounds: dict[str, dict[str, list[float]]] = {
        part: {"fast": [], "conventional": []} for part in ("training step", "evaluation frame", "animation frame")
    }
    for _ in range(args.rounds):
        rounds["training step"]["fast"].append(fast_training(train_chunk, state, data.X, data.y, indices, mask))
        rounds["training step"]["conventional"].append(
            conventional_training(images, labels, order, args.conventional_steps, config.lr)
        )
        rounds["evaluation frame"]["fast"].append(
            fast_evaluation(snapshots, eval_images, eval_labels, eval_segments, config.sections + 1)
        )
        rounds["evaluation frame"]["conventional"].append(
            conventional_evaluation(results, images, labels, test_images, test_labels, order, args.conventional_frames)
        )
        rounds["animation frame"]["fast"].append(time_fast_frames(results) / n_frames)
        rounds["animation frame"]["conventional"].append(
            conventional_animation_frames(results, args.conventional_frames)
        )

    comparison = {}
    for part, sides in rounds.items():
        ratios = [slow / fast for fast, slow in zip(sides["fast"], sides["conventional"])]
        comparison[part] = {
            "fast_ms": _median(sides["fast"]) * 1e3,
            "conventional_ms": _median(sides["conventional"]) * 1e3,
            "speedup_median": _median(ratios),
            "speedup_range": [min(ratios), max(ratios)],
        }
    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "versions": package_versions(),
        "final_test_accuracy": results.final_test_accuracy,
        "run_wall_s": run_wall,
        "run_phases_s": results.timings,
        "run_peak_memory_mb": run_peak_mb,
        "comparison_per_unit": comparison,
        "conventional_full_run_estimate_s": {
            "training": comparison["training step"]["conventional_ms"] * config.n_steps / 1e3,
            "frame evaluation": comparison["evaluation frame"]["conventional_ms"] * n_frames / 1e3,
            "animation frames": comparison["animation frame"]["conventional_ms"] * n_frames / 1e3,
        },
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
