"""Train a small MLP online on a stream of MNIST examples and watch it learn and forget each part.

The 784-128-10 ReLU MLP trains on the 60,000 training images one at a time (Adam, lr 1e-3), predicting each
example before training on it. At 100 evenly spaced points (frames) it measures its accuracy on each
of 100 contiguous sections of the stream and on the test set. The run saves the accuracy heatmap
A[frame, section], an .mp4 of the section accuracies frame by frame, training curves, sample
predictions, metrics.json and the run log, and prints where each went.

    uv run python projects/online/train.py                     # default: shuffled stream
    uv run python projects/online/train.py --order classwise   # one class after another: forgetting
    uv run python projects/online/train.py --help

Time: about 16 s on a quiet 2-core x86 CPU for the default run, figures and animation included
(4 s of it importing JAX and matplotlib), and 20 to 30 s when other jobs share the cores.
Expected result (shuffled, seed 0): test accuracy about 0.96 after one pass; sections seen long ago
stay near the test accuracy. With --order classwise or sorted the model forgets earlier classes
and the final test accuracy is far lower.
Needs MNIST in $SEEWHY_DATA_DIR/mnist/ (the four IDX files) or in the dataset cache.
"""

from __future__ import annotations

import math
import sys

from projects.online.config import OnlineConfig
from shared_lib.experiment import configure_logging, parse_config


def main(argv: list[str] | None = None) -> int:
    config = parse_config(OnlineConfig, argv, description=__doc__)
    # JAX and matplotlib load only after the arguments are valid, so --help and usage errors return fast.
    from projects.online.run import run
    from shared_lib.datasets import DatasetFileError, DatasetNotFoundError

    configure_logging(quiet=config.quiet)
    try:
        results = run(config)
    except (DatasetNotFoundError, DatasetFileError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 1

    width = max(len(name) for name in results.artifacts)
    accuracy = results.final_test_accuracy
    accuracy_text = "undefined (weights non-finite)" if math.isnan(accuracy) else f"{accuracy:.4f}"
    print(f"Run {results.run_id}: final test accuracy {accuracy_text}")
    if results.divergence.diverged:
        print(f"Diverged at step {results.divergence.step:,}; metrics.json has the details under 'divergence'")
    for name, location in results.artifacts.items():
        print(f"  {name:<{width}}  {location}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
