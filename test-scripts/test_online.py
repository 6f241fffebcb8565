"""Unit tests of the online experiment: config checks, stream orders, compiled training, section evaluation,
summaries, the divergence message and the figures.

Each compiled routine is checked against a plain per-step or per-example Python loop on seeded data.
Run with `uv run pytest test-scripts/test_online.py` or `uv run python test-scripts/test_online.py`.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import pytest
from matplotlib.patches import StepPatch

from projects.online import plots
from projects.online.compilation import CompileWatcher
from projects.online.config import MAX_SEED, OnlineConfig
from projects.online.evaluation import correct_counts, evaluate_snapshots, segment_accuracy
from projects.online.model import MLPParams, example_losses, init_params, logits
from projects.online.stream import (
    batch_schedule,
    examples_seen,
    frame_steps,
    section_bounds,
    section_of_examples,
    stream_order,
)
from projects.online.run import RunResults, divergence_message
from projects.online.summaries import Divergence, divergence, seen_sections, summarize_frames
from projects.online.training import init_state, make_train_chunk, train_with_snapshots

D_IN, HIDDEN, CLASSES = 12, 6, 10


def _labels(n: int = 500, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, size=n).astype(np.int32)


def _dataset(n: int, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """Random uint8 images (n, D_IN) and labels that depend on them, so a model can learn something."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, D_IN)).astype(np.uint8)
    labels = (images[:, :3].astype(np.int64).sum(axis=1) * 10 // 766).astype(np.int32)
    return jnp.asarray(images), jnp.asarray(labels)


# ----------------------------------------------------------------------------------------------
# Stream orders


def _class_changes(labels: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(labels)))


@pytest.mark.parametrize("order", ["shuffled", "sorted", "split", "classwise"])
def test_order_is_permutation(order):
    labels = _labels()
    stream = stream_order(labels, order, jax.random.key(0))
    assert sorted(stream.tolist()) == list(range(len(labels)))
    assert not np.array_equal(stream, np.arange(len(labels)))


def test_shuffled_order_seeded():
    labels = _labels()
    first = stream_order(labels, "shuffled", jax.random.key(1))
    again = stream_order(labels, "shuffled", jax.random.key(1))
    other = stream_order(labels, "shuffled", jax.random.key(2))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    # A shuffled stream mixes classes: far more class changes than the 9 of a sorted stream.
    assert _class_changes(labels[first]) > 300


def test_sorted_order_stable():
    labels = _labels()
    stream = stream_order(labels, "sorted", jax.random.key(0))
    assert np.all(np.diff(labels[stream]) >= 0)
    for label in range(10):
        within = stream[labels[stream] == label]
        assert np.all(np.diff(within) > 0), f"class {label} is not in dataset order"
    assert np.array_equal(stream, stream_order(labels, "sorted", jax.random.key(5)))


def test_split_order_halves_interleaved():
    labels = _labels()
    stream = stream_order(labels, "split", jax.random.key(0))
    n_low = int(np.sum(labels < 5))
    assert np.all(labels[stream[:n_low]] < 5)
    assert np.all(labels[stream[n_low:]] >= 5)
    # Interleaved: classes alternate throughout each half instead of forming blocks.
    assert _class_changes(labels[stream[:n_low]]) > n_low // 2
    assert _class_changes(labels[stream[n_low:]]) > (len(labels) - n_low) // 2
    assert not np.array_equal(stream, stream_order(labels, "split", jax.random.key(1)))


def test_classwise_order_blocks():
    labels = _labels()
    stream = stream_order(labels, "classwise", jax.random.key(0))
    assert np.all(np.diff(labels[stream]) >= 0)
    assert _class_changes(labels[stream]) == 9
    within = stream[labels[stream] == 3]
    assert not np.all(np.diff(within) > 0), "classwise should shuffle within a class"
    assert not np.array_equal(stream, stream_order(labels, "sorted", jax.random.key(0)))


# ----------------------------------------------------------------------------------------------
# Sections, batches and frames


def test_section_bounds_cover_stream():
    bounds = section_bounds(10, 3)
    assert bounds.tolist() == [0, 3, 6, 10]


def test_section_of_examples_follows_stream():
    order = np.array([4, 2, 0, 1, 3])
    sections = section_of_examples(order, 2)  # positions 0-1 -> section 0, positions 2-4 -> section 1
    assert sections[[4, 2]].tolist() == [0, 0]
    assert sections[[0, 1, 3]].tolist() == [1, 1, 1]


def test_batch_schedule_pads_last_batch():
    order = np.array([5, 3, 1, 0, 2, 4, 6])
    indices, mask = batch_schedule(order, batch_size=3, epochs=2)
    assert indices.shape == (6, 3)
    assert indices[:3].reshape(-1)[:7].tolist() == order.tolist()
    assert mask[:3].reshape(-1).tolist() == [True] * 7 + [False] * 2
    assert np.array_equal(indices[3:], indices[:3])


def test_frame_steps_even():
    steps = frame_steps(50, 6)
    assert steps[0] == 0
    assert steps[-1] == 50
    assert set(np.diff(steps).tolist()) == {8, 9}


def test_examples_seen_across_passes():
    seen = examples_seen(np.array([0, 1, 3, 4, 6, 7]), batch_size=3, n_examples=7)
    # 3 steps per pass: the third step contains the last example only.
    assert seen.tolist() == [0, 3, 7, 10, 14, 17]


# ----------------------------------------------------------------------------------------------
# Compiled training against a plain loop


def _reference_training(params, images, labels, indices, mask, lr):
    """Train one step at a time in Python, recording each example's loss before the step."""
    optimizer = optax.adam(lr)
    opt_state = optimizer.init(params)
    losses, correct = [], []
    images, labels = np.asarray(images), np.asarray(labels)
    for batch, batch_mask in zip(indices, mask):
        x = jnp.asarray(images[batch].astype(np.float32) / 255.0)
        y = jnp.asarray(labels[batch])
        weights = jnp.asarray(batch_mask, jnp.float32)
        example_loss, example_logits = example_losses(params, x, y)
        losses.append(np.asarray(example_loss))
        correct.append(np.asarray(jnp.argmax(example_logits, -1) == y))

        def objective(p):
            return jnp.sum(example_losses(p, x, y)[0] * weights) / jnp.sum(weights)

        grads = jax.grad(objective)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    return params, np.stack(losses), np.stack(correct)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_scan_matches_plain_loop(batch_size):
    images, labels = _dataset(30)
    order = stream_order(np.asarray(labels), "shuffled", jax.random.key(3))
    indices, mask = batch_schedule(order, batch_size, epochs=2)
    optimizer = optax.adam(1e-2)
    state = init_state(jax.random.key(4), D_IN, HIDDEN, CLASSES, optimizer)
    steps = frame_steps(len(indices), 3)

    final, snapshots, metrics = train_with_snapshots(
        make_train_chunk(optimizer), state, images, labels, indices, mask, steps
    )
    expected_params, expected_loss, expected_correct = _reference_training(
        state.params, images, labels, indices, mask, 1e-2
    )

    assert int(final.step) == len(indices)
    for leaf, expected in zip(final.params, expected_params):
        np.testing.assert_allclose(leaf, expected, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(np.asarray(metrics.loss)[mask], expected_loss[mask], rtol=2e-5, atol=2e-6)
    assert np.array_equal(np.asarray(metrics.correct)[mask], expected_correct[mask])
    assert snapshots.w1.shape == (len(steps), D_IN, HIDDEN)
    np.testing.assert_array_equal(snapshots.w1[0], state.params.w1)
    np.testing.assert_array_equal(snapshots.w1[-1], final.params.w1)


def test_prequential_loss_before_update():
    images, labels = _dataset(8)
    optimizer = optax.adam(0.1)
    state = init_state(jax.random.key(0), D_IN, HIDDEN, CLASSES, optimizer)
    indices = np.arange(8, dtype=np.int32).reshape(8, 1)
    mask = np.ones((8, 1), bool)
    _, snapshots, metrics = train_with_snapshots(
        make_train_chunk(optimizer), state, images, labels, indices, mask, np.arange(9)
    )
    for step in range(8):
        params = jax.tree.map(lambda leaf: leaf[step], snapshots)
        x = images[step : step + 1].astype(jnp.float32) / 255.0
        loss_before, _ = example_losses(params, x, labels[step : step + 1])
        np.testing.assert_allclose(metrics.loss[step], loss_before, rtol=1e-5)


def test_training_compiles_once_per_length():
    images, labels = _dataset(50)
    indices, mask = batch_schedule(np.arange(50), 1, 1)
    optimizer = optax.adam(1e-3)
    state = init_state(jax.random.key(0), D_IN, HIDDEN, CLASSES, optimizer)
    train_chunk = make_train_chunk(optimizer)
    steps = frame_steps(50, 6)  # chunks of 8 and 9 steps
    compiles_after_chunk = []

    with CompileWatcher() as watcher:
        train_with_snapshots(
            train_chunk, state, images, labels, indices, mask, steps,
            on_chunk=lambda _: compiles_after_chunk.append(watcher.backend_compiles),
        )
    # The 8-step scan compiles in chunk 1, the 1-step scan in chunk 3 (the first 9-step chunk).
    assert train_chunk._cache_size() == 2
    assert compiles_after_chunk[0] >= 1
    assert len(set(compiles_after_chunk[2:])) == 1, compiles_after_chunk


def test_vmap_over_seeds_matches_single():
    images, labels = _dataset(20)
    indices, mask = batch_schedule(np.arange(20), 2, 1)
    optimizer = optax.adam(1e-2)
    train_chunk = make_train_chunk(optimizer)
    states = [init_state(jax.random.key(seed), D_IN, HIDDEN, CLASSES, optimizer) for seed in (0, 1)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)

    batched_state, batched_metrics = jax.vmap(train_chunk, in_axes=(0, None, None, None, None))(
        stacked, images, labels, indices, mask
    )
    for seed, state in enumerate(states):
        single_state, single_metrics = train_chunk(state, images, labels, indices, mask)
        np.testing.assert_allclose(batched_state.params.w1[seed], single_state.params.w1, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(batched_metrics.loss[seed], single_metrics.loss, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Section evaluation against a plain loop


def _random_snapshots(count: int, seed: int = 0) -> MLPParams:
    params = [init_params(jax.random.key(seed + i), D_IN, HIDDEN, CLASSES) for i in range(count)]
    # Scale up so predictions differ between snapshots and examples.
    return jax.tree.map(lambda *leaves: 30.0 * jnp.stack(leaves), *params)


def test_evaluation_matches_plain_loop():
    images, labels = _dataset(53, seed=1)
    images = images.at[:, [0, 5]].set(0)  # pixels that are zero everywhere are dropped; results must not change
    segments = np.random.default_rng(2).integers(0, 4, size=53).astype(np.int32)
    snapshots = _random_snapshots(5)

    counts = evaluate_snapshots(snapshots, images, labels, segments, 4, rows=10, group=2)

    expected = np.zeros((5, 4))
    for snapshot in range(5):
        params = jax.tree.map(lambda leaf: leaf[snapshot], snapshots)
        for example in range(53):
            x = images[example : example + 1].astype(jnp.float32) / 255.0
            predicted = int(jnp.argmax(logits(params, x)[0]))
            expected[snapshot, segments[example]] += predicted == int(labels[example])
    np.testing.assert_array_equal(counts, expected)
    assert expected.sum() > 0


def test_evaluation_compiles_once():
    images, labels = _dataset(53, seed=1)
    segments = np.zeros(53, np.int32)
    before = correct_counts._cache_size()
    evaluate_snapshots(_random_snapshots(5), images, labels, segments, 1, rows=7, group=2)
    evaluate_snapshots(_random_snapshots(5, seed=9), images, labels, segments, 1, rows=7, group=2)
    # 8 chunks x 3 groups x 2 calls share one compilation.
    assert correct_counts._cache_size() == before + 1


def test_nonfinite_snapshot_accuracy_nan():
    accuracy = segment_accuracy(np.array([[2.0, 1.0], [1.0, 1.0]]), np.array([4, 2]), np.array([True, False]))
    np.testing.assert_allclose(accuracy[0], [0.5, 0.5])
    assert np.all(np.isnan(accuracy[1]))


# ----------------------------------------------------------------------------------------------
# Summaries and divergence


def test_summary_matches_definitions():
    accuracy = np.array([[0.1, 0.2, 0.3], [0.9, 0.5, 0.4], [0.7, 0.8, 0.6]])
    seen = seen_sections(np.array([0, 4, 9]), n_examples=9, n_sections=3)
    assert seen.tolist() == [[False] * 3, [True, False, False], [True] * 3]

    summary = summarize_frames(accuracy, seen)
    np.testing.assert_allclose(summary.mean, accuracy.mean(axis=1))
    np.testing.assert_allclose(summary.median, [0.2, 0.5, 0.7])
    np.testing.assert_allclose(summary.min, [0.1, 0.4, 0.6])
    np.testing.assert_allclose(summary.max, [0.3, 0.9, 0.8])
    np.testing.assert_allclose(summary.std, accuracy.std(axis=1))
    np.testing.assert_allclose(summary.seen_mean, [np.nan, 0.9, 0.7])
    np.testing.assert_allclose(summary.unseen_mean, [0.2, 0.45, np.nan])
    np.testing.assert_allclose(summary.forgetting, [0.2, 0.0, 0.0], atol=1e-12)
    assert summary.mean_forgetting == pytest.approx(0.2 / 3)


def test_summary_skips_undefined_frames():
    accuracy = np.array([[0.5, 0.6], [np.nan, np.nan]])
    summary = summarize_frames(accuracy, np.zeros((2, 2), bool))
    assert np.isnan(summary.mean[1])
    assert np.all(np.isnan(summary.forgetting))


def test_divergence_threshold_and_nan():
    losses = np.array([[0.5, 0.1], [2.0, 150.0], [np.nan, 1.0], [np.inf, 0.0]])
    mask = np.ones_like(losses, dtype=bool)
    found = divergence(losses, mask, threshold=100.0)
    assert found.diverged and found.step == 1
    assert found.loss == 150.0
    assert found.nonfinite_step == 2


def test_divergence_ignores_padding():
    losses = np.array([[0.5, np.nan], [0.4, 0.3]])
    mask = np.array([[True, False], [True, True]])
    assert not divergence(losses, mask, threshold=100.0).diverged


def test_large_lr_diverges():
    images, labels = _dataset(40)
    indices, mask = batch_schedule(np.arange(40), 1, 1)
    optimizer = optax.adam(1e30)
    state = init_state(jax.random.key(0), D_IN, HIDDEN, CLASSES, optimizer)
    _, _, metrics = train_with_snapshots(
        make_train_chunk(optimizer), state, images, labels, indices, mask, frame_steps(40, 4)
    )
    found = divergence(np.asarray(metrics.loss), mask, threshold=100.0)
    assert found.diverged
    assert found.nonfinite_step is not None and found.step <= found.nonfinite_step < 40



def test_divergence_message_finite_loss():
    message = divergence_message(Divergence(True, 1234, 150.5, None), threshold=100.0)
    assert message == (
        "Training diverged: the prequential loss exceeded the 100-nat threshold at step 1,234 (150.5 nats) "
        "and stayed finite throughout the run"
    )
    assert "never" not in message


def test_divergence_message_nonfinite_loss():
    message = divergence_message(Divergence(True, 7, float("nan"), 7), threshold=100.0)
    assert message == "Training diverged: the prequential loss became non-finite at step 7"


def test_divergence_message_large_then_nonfinite():
    message = divergence_message(Divergence(True, 3, 2e6, 9), threshold=100.0)
    assert "exceeded the 100-nat threshold at step 3 (2e+06 nats)" in message
    assert message.endswith("became non-finite at step 9")


# ----------------------------------------------------------------------------------------------
# Config checks


@pytest.mark.parametrize("seed", [0, 1, MAX_SEED])
def test_config_seed_accepted(seed):
    assert OnlineConfig(seed=seed).seed == seed


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 99999999999999999999])
def test_config_seed_out_of_range(seed):
    with pytest.raises(ValueError, match=f"--seed {seed} is invalid; use an integer from 0 to 4294967295"):
        OnlineConfig(seed=seed)


def test_max_seed_is_32_bits():
    assert MAX_SEED == 2**32 - 1


@pytest.mark.parametrize("fps", [0.5, 10.0, 60.0])
def test_config_fps_accepted(fps):
    assert OnlineConfig(fps=fps).fps == fps


@pytest.mark.parametrize("fps", [0.001, 0.49, 60.5, 1e9])
def test_config_fps_out_of_range(fps):
    with pytest.raises(ValueError, match=r"use 0\.5 to 60$"):
        OnlineConfig(fps=fps)


# ----------------------------------------------------------------------------------------------
# Figures


def _results(accuracy: np.ndarray, n_examples: int) -> RunResults:
    """Results of a made-up run of `n_examples` examples, batch size 1, with the given accuracy (F + 1, S)."""
    n_frames, n_sections = accuracy.shape[0] - 1, accuracy.shape[1]
    config = OnlineConfig(n_train=n_examples, sections=n_sections, frames=n_frames, animation=False)
    steps = frame_steps(n_examples, n_frames)
    seen = examples_seen(steps, 1, n_examples)
    rng = np.random.default_rng(0)
    test_accuracy = accuracy.mean(axis=1)
    return RunResults(
        run_id="online-test",
        config=config,
        accuracy=accuracy,
        test_accuracy=test_accuracy,
        frame_steps=steps,
        frame_examples=seen,
        section_bounds=section_bounds(n_examples, n_sections),
        summary=summarize_frames(accuracy, seen_sections(seen, n_examples, n_sections)),
        prequential_loss=rng.uniform(0.1, 3.0, n_examples),
        prequential_correct=rng.random(n_examples) < 0.7,
        divergence=Divergence(False, None, None, None),
        final_test_accuracy=float(test_accuracy[-1]),
        timings={},
        peak_memory_mb=0.0,
        artifacts={},
    )


def _rising_accuracy(n_frames: int, n_sections: int) -> np.ndarray:
    return np.linspace(0.1, 0.95, n_frames + 1)[:, None] * np.ones(n_sections)


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


def _stairs(ax, label: str) -> StepPatch:
    (patch,) = [artist for artist in ax.patches if isinstance(artist, StepPatch) and artist.get_label() == label]
    return patch


def test_final_sections_cover_whole_stream(close_figures):
    results = _results(_rising_accuracy(4, 10), n_examples=100)
    ax = plots.final_sections_figure(results).axes[0]
    for label in ("final accuracy", "best accuracy over all frames"):
        values, edges, _ = _stairs(ax, label).get_data()
        np.testing.assert_array_equal(edges, np.arange(0, 101, 10))
        np.testing.assert_allclose(values, results.accuracy[-1])
        x = _stairs(ax, label).get_path().vertices[:, 0]
        assert x.min() == 0, label
        assert x.max() == 100, label
    assert ax.get_xlim() == (0, 100)


def test_final_sections_show_lowest_section(close_figures):
    accuracy = _rising_accuracy(4, 10)
    accuracy[-1, 3] = 0.12
    ax = plots.final_sections_figure(_results(accuracy, n_examples=100)).axes[0]
    lower, upper = ax.get_ylim()
    assert 0 < lower < 0.12
    assert upper >= 1


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        (([0.5, 0.9], [0.95]), (0.48, 1.005)),
        (([0.12] + [0.95] * 49,), (0.10, 1.005)),
        (([0.01, np.nan, 1.0],), (0.0, 1.005)),
        (([np.nan],), (0.0, 1.005)),
    ],
)
def test_accuracy_limits(arrays, expected):
    np.testing.assert_allclose(plots.accuracy_limits(*map(np.array, arrays)), expected)


def _colorbar_label(fig) -> str:
    return fig.axes[-1].get_ylabel()


def test_heatmap_gray_label_only_with_nan(close_figures):
    accuracy = _rising_accuracy(4, 5)
    assert "gray" not in _colorbar_label(plots.heatmap_figure(_results(accuracy, n_examples=100)))
    accuracy[-1] = np.nan
    assert "gray: undefined" in _colorbar_label(plots.heatmap_figure(_results(accuracy, n_examples=100)))


@pytest.mark.parametrize(
    ("largest", "divisor", "unit"),
    [(1, 1, "examples"), (4999, 1, "examples"), (5000, 1000, "thousands of examples"), (60000, 1000, "thousands of examples")],
)
def test_count_axis_unit(largest, divisor, unit):
    assert plots.count_axis(largest) == (divisor, unit)


def test_short_stream_axes_in_examples(close_figures):
    results = _results(_rising_accuracy(4, 10), n_examples=300)
    figures = [plots.progress_figure(results), plots.final_sections_figure(results), plots.frame_summary_figure(results)]
    for fig in figures:
        ax = fig.axes[0]
        assert "(examples" in ax.get_xlabel(), ax.get_xlabel()
        assert "thousands" not in ax.get_xlabel(), ax.get_xlabel()
        assert ax.get_xlim()[1] == 300
        ticks = [tick for tick in ax.get_xticks() if 0 <= tick <= 300]
        assert all(float(tick).is_integer() for tick in ticks), ticks


def test_long_stream_axes_in_thousands(close_figures):
    results = _results(_rising_accuracy(4, 10), n_examples=6000)
    ax = plots.final_sections_figure(results).axes[0]
    assert "thousands of examples" in ax.get_xlabel()
    assert ax.get_xlim() == (0, 6)


def test_progress_single_example_visible(close_figures):
    results = _results(np.array([[0.0], [1.0]]), n_examples=1)
    fig = plots.progress_figure(results)
    assert "1 examples" not in fig.get_suptitle()
    assert "not smoothed" in fig.get_suptitle()
    for ax in fig.axes:
        (line,) = ax.get_lines()
        assert line.get_marker() == "o"
        np.testing.assert_array_equal(line.get_xdata(), [1.0])
        assert ax.get_xlim() == (0, 1)


def test_progress_long_run_smoothed(close_figures):
    results = _results(_rising_accuracy(4, 10), n_examples=1000)
    fig = plots.progress_figure(results)
    assert "moving mean over 5 examples" in fig.get_suptitle()
    assert fig.axes[0].get_lines()[0].get_marker() == "None"


def test_frame_summary_mean_on_top(close_figures):
    ax = plots.frame_summary_figure(_results(_rising_accuracy(4, 10), n_examples=100)).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    mean = lines.pop("mean over sections")
    assert len(lines) == 4
    for label, line in lines.items():
        assert mean.get_zorder() > line.get_zorder(), label
        assert mean.get_linewidth() > line.get_linewidth(), label
        assert mean.get_color() != line.get_color(), label


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", *sys.argv[1:]]))
