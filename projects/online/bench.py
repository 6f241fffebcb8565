"""Benchmark the default online run against a conventional implementation of the same experiment.

    flock /tmp/seewhy-bench.lock uv run python projects/online/bench.py

Both sides run in this process, one after the other. This implementation runs the default config
(60,000 examples at batch size 1, 100 frames x 100 sections, shuffled) through `run()` and reports
its phases, its wall time and its peak memory. The conventional implementation is what a first
version of this experiment usually looks like:

- training: a jitted Adam step called from a Python loop once per example, reading each loss back
  with float();
- frame evaluation: a jitted accuracy function called once per section and once for the test set;
- animation: a new matplotlib figure drawn for every frame.

To keep the benchmark short, the conventional side runs on a prefix (--conventional-steps training
steps, --conventional-frames frames) and is extrapolated linearly to the full run. That is valid
because its cost per step and per frame does not depend on where in the run it is measured. Takes about 1.5 minutes.
Needs MNIST in $SEEWHY_DATA_DIR/mnist/. Artifacts go through shared_lib.media as for any run.
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
from projects.online.model import example_losses, init_params, logits
from projects.online.run import RunResults, run
from projects.online.stream import section_bounds, stream_order
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conventional-steps", type=int, default=5000,
                        help="training steps timed for the conventional loop (default: %(default)s)")
    parser.add_argument("--conventional-frames", type=int, default=10,
                        help="frames timed for the conventional evaluation and animation (default: %(default)s)")
    args = parser.parse_args(argv)

    config = OnlineConfig(quiet=True)
    results, run_wall, run_peak_mb = time_fast_run(config)
    fast_frames_seconds = time_fast_frames(results)
    n_frames = config.frames + 1

    data = load_supervised_1d("mnist")
    images, labels = np.asarray(data.X), np.asarray(data.y)
    order = stream_order(labels, "shuffled", jax.random.key(0))
    conv_step = conventional_training(images, labels, order, args.conventional_steps, config.lr)
    conv_frame_eval = conventional_evaluation(
        results, images, labels, np.asarray(data.X_test), np.asarray(data.y_test), order, args.conventional_frames
    )
    conv_frame_draw = conventional_animation_frames(results, args.conventional_frames)

    timings = results.timings
    fast = {
        "training_s": timings["training"],
        "training_us_per_step": timings["training"] / config.n_steps * 1e6,
        "frame_evaluation_s": timings["frame evaluation"],
        "animation_frames_s": fast_frames_seconds,
    }
    conventional = {
        "training_s": conv_step * config.n_steps,
        "training_us_per_step": conv_step * 1e6,
        "frame_evaluation_s": conv_frame_eval * n_frames,
        "animation_frames_s": conv_frame_draw * n_frames,
    }
    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or 'unknown CPU'}",
        "versions": package_versions(),
        "final_test_accuracy": results.final_test_accuracy,
        "fast_run_wall_s": run_wall,
        "fast_phases_s": timings,
        "fast_peak_memory_mb": run_peak_mb,
        "fast": fast,
        "conventional": conventional,
        "conventional_measured": {"training_steps": args.conventional_steps, "frames": args.conventional_frames},
        "speedup": {name: conventional[name] / fast[name] for name in ("training_s", "frame_evaluation_s", "animation_frames_s")},
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
