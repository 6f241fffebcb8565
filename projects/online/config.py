"""Hyperparameters of the online MNIST experiment, one documented field each, parsed to `--help`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Literal

__all__ = ["MAX_FPS", "MAX_SEED", "MIN_FPS", "MNIST_TRAIN_SIZE", "MNIST_TEST_SIZE", "OnlineConfig", "StreamOrder"]

MNIST_TRAIN_SIZE = 60_000
MNIST_TEST_SIZE = 10_000
# jax.random.key (JAX 0.10.2, threefry) maps 2**32 to the key of seed 0 and raises OverflowError above 64 bits.
MAX_SEED = 2**32 - 1
# Under 0.5 frames per second the default 101 frames take over 3 minutes to play. Above 60 a 60 Hz display
# skips frames, and at 1e9 the duration of the mp4 rounds to 0 s.
MIN_FPS = 0.5
MAX_FPS = 60.0

StreamOrder = Literal["shuffled", "sorted", "split", "classwise"]


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """One run of online MLP training on a stream of MNIST examples."""

    order: StreamOrder = field(
        default="shuffled",
        metadata={
            "help": "order of the training stream: shuffled (seeded), sorted (by class, dataset order within "
            "a class), split (classes 0-4 in seeded random order, then 5-9), classwise (class 0 to 9, "
            "seeded random order within each class)"
        },
    )
    seed: int = field(
        default=0, metadata={"help": f"seed of the parameter initialisation and the stream order, 0 to {MAX_SEED}"}
    )
    n_train: int | None = field(
        default=None,
        metadata={"help": f"use the first N training examples as the stream, 1 to {MNIST_TRAIN_SIZE} (all when unset)"},
    )
    n_test: int | None = field(
        default=None,
        metadata={"help": f"use the first N test examples, 1 to {MNIST_TEST_SIZE} (all when unset)"},
    )
    hidden: int = field(default=128, metadata={"help": "hidden units of the 784-H-10 ReLU MLP"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    batch_size: int = field(default=1, metadata={"help": "examples per training step (1 is online learning)"})
    epochs: int = field(default=1, metadata={"help": "passes over the same stream"})
    frames: int = field(
        default=100,
        metadata={
            "help": "evaluation points evenly spaced over the training steps, plus one at step 0; "
            "at most the number of steps"
        },
    )
    sections: int = field(
        default=100,
        metadata={
            "help": "contiguous slices of the stream whose accuracy each frame measures; "
            "at most the number of examples"
        },
    )
    fps: float = field(
        default=10.0, metadata={"help": f"frames per second of the animation, {MIN_FPS:g} to {MAX_FPS:g}"}
    )
    animation: bool = field(default=True, metadata={"help": "render the frame-by-frame animation (.mp4)"})
    divergence_loss: float = field(
        default=100.0,
        metadata={
            "help": "a prequential loss above this many nats, or a non-finite one, marks the run as diverged"
        },
    )
    quiet: bool = field(default=False, metadata={"help": "log only warnings and show no progress bar"})

    def __post_init__(self) -> None:
        _check_choice("order", self.order, ("shuffled", "sorted", "split", "classwise"))
        _check_int_range("seed", self.seed, 0, MAX_SEED)
        _check_optional_range("n_train", self.n_train, MNIST_TRAIN_SIZE)
        _check_optional_range("n_test", self.n_test, MNIST_TEST_SIZE)
        for name in ("hidden", "batch_size", "epochs", "frames", "sections"):
            _check_positive_int(name, getattr(self, name))
        for name in ("lr", "fps", "divergence_loss"):
            _check_positive_float(name, getattr(self, name))
        _check_float_range("fps", self.fps, MIN_FPS, MAX_FPS)

        if self.sections > self.n_examples:
            raise ValueError(
                f"--sections {self.sections} is more than the {self.n_examples} examples in the stream; "
                f"use 1 to {self.n_examples}"
            )
        if self.batch_size > self.n_examples:
            raise ValueError(
                f"--batch-size {self.batch_size} is more than the {self.n_examples} examples in the stream; "
                f"use 1 to {self.n_examples}"
            )
        if self.frames > self.n_steps:
            raise ValueError(
                f"--frames {self.frames} is more than the {self.n_steps} training steps; use 1 to {self.n_steps}"
            )

    @property
    def n_examples(self) -> int:
        """Examples in one pass of the stream."""
        return MNIST_TRAIN_SIZE if self.n_train is None else self.n_train

    @property
    def steps_per_epoch(self) -> int:
        """Training steps per pass; the last batch of a pass is smaller when the batch size does not divide it."""
        return math.ceil(self.n_examples / self.batch_size)

    @property
    def n_steps(self) -> int:
        """Training steps of the whole run."""
        return self.epochs * self.steps_per_epoch


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"--{_option(name)} {value!r} is invalid; use one of {', '.join(choices)}")


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"--{_option(name)} {value!r} is invalid; use a positive integer")


def _check_int_range(name: str, value: object, minimum: int, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise ValueError(f"--{_option(name)} {value!r} is invalid; use an integer from {minimum} to {maximum}")


def _check_float_range(name: str, value: float, minimum: float, maximum: float) -> None:
    if not minimum <= value <= maximum:
        raise ValueError(f"--{_option(name)} {value!r} is invalid; use {minimum:g} to {maximum:g}")


def _check_optional_range(name: str, value: object, maximum: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise ValueError(f"--{_option(name)} {value!r} is invalid; use 1 to {maximum}")


def _check_positive_float(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"--{_option(name)} {value!r} is invalid; use a finite number above 0")


def _option(name: str) -> str:
    return name.replace("_", "-")
