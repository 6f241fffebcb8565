"""Command-line tests of projects/online/train.py: --help, rejected values and real MNIST smoke runs.

The smoke runs need MNIST in $SEEWHY_DATA_DIR/mnist/ and are skipped without it.
Run with `uv run pytest test-scripts/test_online_cli.py` or `uv run python test-scripts/test_online_cli.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
TRAIN = REPOSITORY / "projects" / "online" / "train.py"
ARTIFACTS = (
    "progress.png",
    "final_sections.png",
    "heatmap.png",
    "frame_summary.png",
    "sample_predictions.png",
    "sections.mp4",
    "metrics.json",
    "run.log",
)

needs_mnist = pytest.mark.skipif(
    not os.environ.get("SEEWHY_DATA_DIR"),
    reason="SEEWHY_DATA_DIR is not set; point it at a folder with mnist/ to run the smoke tests",
)


def _train(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    environment = {**os.environ, "SEEWHY_DOTENV_PATH": ""}
    environment = {name: value for name, value in environment.items() if not name.startswith("R2_")}
    return subprocess.run(
        [sys.executable, str(TRAIN), *args], capture_output=True, text=True, timeout=timeout, env=environment
    )


def test_help_lists_options():
    result = _train("--help", timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--order", "--n-train", "--hidden", "--lr", "--batch-size", "--frames", "--sections", "--quiet"):
        assert option in result.stdout
    assert "{shuffled,sorted,split,classwise}" in result.stdout
    assert "(default: 0.001)" in result.stdout
    assert "nats" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--order", "random"], "invalid choice: 'random'"),
        (["--hidden", "0"], "--hidden 0 is invalid; use a positive integer"),
        (["--lr", "-1"], "--lr -1.0 is invalid; use a finite number above 0"),
        (["--lr", "nan"], "--lr nan is invalid"),
        (["--batch-size", "0"], "--batch-size 0 is invalid"),
        (["--n-train", "70000"], "--n-train 70000 is invalid; use 1 to 60000"),
        (["--seed", "99999999999999999999"], "--seed 99999999999999999999 is invalid; use an integer from 0 to 4294967295"),
        (["--seed", "-1"], "--seed -1 is invalid; use an integer from 0 to 4294967295"),
        (["--seed", "4294967296"], "--seed 4294967296 is invalid"),
        (["--fps", "1e9"], "--fps 1000000000.0 is invalid; use 0.5 to 60"),
        (["--fps", "0.001"], "--fps 0.001 is invalid; use 0.5 to 60"),
        (["--n-train", "50", "--sections", "51"], "--sections 51 is more than the 50 examples in the stream; use 1 to 50"),
        (["--n-train", "50", "--sections", "5", "--batch-size", "10", "--frames", "6"], "--frames 6 is more than the 5 training steps; use 1 to 5"),
    ],
)
def test_invalid_value_rejected(args, message):
    result = _train(*args, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_skips_jax_and_matplotlib():
    # --help and usage errors must not pay the seconds that importing JAX and matplotlib take.
    script = (
        "import sys\n"
        "from projects.online import train\n"
        "for argv in (['--help'], ['--seed', '-1']):\n"
        "    try:\n"
        "        train.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(name for name in ('jax', 'matplotlib') if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPOSITORY
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def _artifact_folder(output_dir: Path, stdout: str) -> Path:
    run_id = stdout.split()[1].rstrip(":")
    (folder,) = output_dir.glob(f"*/{run_id}")
    return folder


@needs_mnist
def test_smoke_run_writes_consistent_artifacts(tmp_path, monkeypatch):
    output_dir = tmp_path / "outputs"
    monkeypatch.setenv("SEEWHY_OUTPUT_DIR", str(output_dir))
    result = _train("--n-train", "3000", "--n-test", "1000", "--frames", "6", "--sections", "12",
                    "--batch-size", "2", "--quiet")
    assert result.returncode == 0, result.stderr

    folder = _artifact_folder(output_dir, result.stdout)
    for name in ARTIFACTS:
        assert (folder / name).stat().st_size > 0, name
        assert str(folder / name) in result.stdout
    metrics = json.loads((folder / "metrics.json").read_text())

    accuracy = np.array(metrics["accuracy"], dtype=float)
    assert accuracy.shape == (7, 12)
    assert np.all((accuracy >= 0) & (accuracy <= 1))
    assert len(metrics["test_accuracy"]) == 7
    assert metrics["final_test_accuracy"] == metrics["test_accuracy"][-1]
    assert 0.7 < metrics["final_test_accuracy"] <= 1
    summary = metrics["section_accuracy_summary"]
    np.testing.assert_allclose(summary["mean"], accuracy.mean(axis=1))
    np.testing.assert_allclose(summary["max"], accuracy.max(axis=1))
    np.testing.assert_allclose(summary["median"], np.median(accuracy, axis=1))
    np.testing.assert_allclose(metrics["forgetting"], accuracy.max(axis=0) - accuracy[-1])
    assert metrics["frame_steps"] == [0, 250, 500, 750, 1000, 1250, 1500]
    assert metrics["frame_examples"][-1] == 3000
    assert metrics["divergence"]["diverged"] is False
    assert metrics["config"]["batch_size"] == 2
    assert "jax" in metrics["package_versions"]
    for phase in ("data", "compile", "training", "frame evaluation", "figures", "animation"):
        assert metrics["timings_seconds"][phase] >= 0, phase
    assert "Final test accuracy" in (folder / "run.log").read_text()


@needs_mnist
def test_diverged_run_still_saves(tmp_path, monkeypatch):
    output_dir = tmp_path / "outputs"
    monkeypatch.setenv("SEEWHY_OUTPUT_DIR", str(output_dir))
    result = _train("--n-train", "1000", "--n-test", "200", "--frames", "4", "--sections", "5",
                    "--lr", "1e30", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Diverged at step" in result.stdout

    folder = _artifact_folder(output_dir, result.stdout)
    for name in ARTIFACTS:
        assert (folder / name).stat().st_size > 0, name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["divergence"]["diverged"] is True
    assert metrics["divergence"]["nonfinite_step"] is not None
    assert metrics["accuracy"][-1] == [None] * 5
    log = (folder / "run.log").read_text()
    assert "Training diverged: the prequential loss" in log
    assert "non-finite at step" in log
    assert "never" not in log


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", *sys.argv[1:]]))
