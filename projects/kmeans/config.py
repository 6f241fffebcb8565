"""Hyperparameters of the k-means experiment, parsed from the command line by `shared_lib.experiment`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Literal

from shared_lib.datasets import DATASET_NAMES

__all__ = ["KMeansConfig", "MAX_SEED", "OptionError"]

MAX_SEED = 2**32 - 1


class OptionError(ValueError):
    """An option value that the loaded data rules out; the message names the option, the value and the allowed range."""


@dataclasses.dataclass(frozen=True)
class KMeansConfig:
    """One k-means run: data, algorithm, stopping rule and seed."""

    dataset: Literal[DATASET_NAMES] = field(
        default="mnist", metadata={"help": "dataset whose training images are clustered"}
    )
    n_train: int | None = field(
        default=None, metadata={"help": "number of training images to cluster, from the start of the split; all when not given"}
    )
    k: int = field(default=10, metadata={"help": "number of clusters, at least 1 and at most the number of images"})
    algorithm: Literal["lloyd", "minibatch"] = field(
        default="lloyd",
        metadata={"help": "lloyd: full passes over the data; minibatch: Sculley's mini-batch updates"},
    )
    max_iter: int = field(
        default=300,
        metadata={
            "help": "maximum number of iterations, at least 1: Lloyd passes, or for minibatch full passes "
            "each followed by an epoch of n/batch-size mini-batches"
        },
    )
    tol: float = field(
        default=1e-4,
        metadata={
            "help": "stop when the inertia changes by less than this fraction of the previous iteration's "
            "(0 runs Lloyd until no point changes cluster)"
        },
    )
    batch_size: int = field(default=1024, metadata={"help": "points per mini-batch for --algorithm minibatch"})
    init_trials: int | None = field(
        default=None,
        metadata={
            "help": "k-means++ candidates drawn per centre, of which the best is kept; 1 is plain D² sampling, "
            "and when not given 2 + floor(ln k)"
        },
    )
    seed: int = field(default=0, metadata={"help": f"seed for k-means++ and the mini-batches, 0 to {MAX_SEED}"})
    quiet: bool = field(default=False, metadata={"help": "log warnings only and hide the progress bar"})

    def __post_init__(self) -> None:
        _check_int("--k", self.k, 1)
        _check_int("--max-iter", self.max_iter, 1)
        _check_int("--batch-size", self.batch_size, 1)
        _check_int("--seed", self.seed, 0, MAX_SEED)
        if self.n_train is not None:
            _check_int("--n-train", self.n_train, 1)
            if self.k > self.n_train:
                raise ValueError(f"--k must be at most --n-train ({self.n_train}), got {self.k}")
        if self.init_trials is not None:
            _check_int("--init-trials", self.init_trials, 1)
        if not (isinstance(self.tol, (int, float)) and math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"--tol must be a finite number >= 0, got {self.tol!r}")
        if self.dataset not in DATASET_NAMES:
            raise ValueError(f"--dataset must be one of {', '.join(DATASET_NAMES)}, got {self.dataset!r}")
        if self.algorithm not in ("lloyd", "minibatch"):
            raise ValueError(f"--algorithm must be lloyd or minibatch, got {self.algorithm!r}")


def _check_int(option: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{option} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ValueError(f"{option} must be {allowed}, got {value}")
