"""Pieces every experiment shares: config parsing, run ids, phase timing and run metadata.

An experiment declares its hyperparameters as a frozen dataclass whose fields carry their help text
in `metadata={"help": ...}` and whose `__post_init__` raises ValueError on invalid values.
`parse_config` turns that dataclass into a command line with `--help`:

    @dataclasses.dataclass(frozen=True)
    class Config:
        lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})

    config = parse_config(Config, description=__doc__)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import logging
import platform
import secrets
import sys
import time
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "PhaseTimer",
    "build_parser",
    "capture_run_log",
    "configure_logging",
    "new_run_id",
    "package_versions",
    "parse_config",
]

ConfigT = TypeVar("ConfigT")

# Packages whose versions go into every metrics.json.
_REPORTED_PACKAGES = ("jax", "jaxlib", "optax", "numpy", "matplotlib", "datasets", "imageio", "imageio-ffmpeg")


def _option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _add_field_argument(parser: argparse.ArgumentParser, field: dataclasses.Field, hints: dict) -> None:
    annotation = hints[field.name]
    help_text = field.metadata.get("help", "")
    kwargs: dict[str, Any] = {"default": field.default, "dest": field.name}

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        # Optional[X]: accept X on the command line, default None.
        (annotation,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]

    if annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        kwargs["choices"] = choices
        kwargs["type"] = type(choices[0])
    else:
        kwargs["type"] = annotation
        kwargs["metavar"] = annotation.__name__.upper()

    parser.add_argument(_option_name(field.name), help=f"{help_text} (default: %(default)s)", **kwargs)


def build_parser(config_cls: type, description: str | None = None) -> argparse.ArgumentParser:
    """Build an argparse parser with one `--option` per field of the config dataclass."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        if field.init:
            _add_field_argument(parser, field, hints)
    return parser


def parse_config(
    config_cls: type[ConfigT], argv: Sequence[str] | None = None, description: str | None = None
) -> ConfigT:
    """Parse the command line into `config_cls`; invalid values exit with the config's error message."""
    parser = build_parser(config_cls, description)
    namespace = parser.parse_args(argv)
    try:
        return config_cls(**vars(namespace))
    except ValueError as error:
        parser.error(str(error))


def new_run_id(experiment: str, now: dt.datetime | None = None) -> str:
    """Return a run id such as `online-20261204-153012-3fa9`: sortable by time, unique per run."""
    now = now or dt.datetime.now()
    return f"{experiment}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def package_versions() -> dict[str, str]:
    """Return the Python version and the installed versions of the packages a run depends on."""
    versions = {"python": platform.python_version()}
    for name in _REPORTED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


class PhaseTimer:
    """Wall-clock seconds per named phase of a run, accumulated over repeated entries."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def configure_logging(quiet: bool = False, log_file: str | None = None) -> None:
    """Configure the root logger for a script: INFO to stderr (WARNING with `quiet`), and all INFO to `log_file`."""
    handlers: list[logging.Handler] = []
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    handlers.append(console)
    if log_file is not None:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(logging.INFO)
        handlers.append(file_handler)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=handlers,
        force=True,
    )
    # JAX logs backend probing at INFO ("Unable to initialize backend 'tpu'"), which is noise in a run log.
    logging.getLogger("jax").setLevel(logging.WARNING)


@contextlib.contextmanager
def capture_run_log(path: Path, logger_names: Sequence[str]) -> Iterator[Path]:
    """Write the INFO and higher records of the named loggers to `path` while the block runs.

    Loggers left above INFO (for example by a notebook whose root logger stays at WARNING) are
    lowered to INFO for the duration, so the run log is complete whatever the caller configured.
    """
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    loggers = [logging.getLogger(name) for name in logger_names]
    previous_levels = [log.level for log in loggers]
    for log in loggers:
        log.addHandler(handler)
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)
    try:
        yield path
    finally:
        for log, level in zip(loggers, previous_levels):
            log.removeHandler(handler)
            log.setLevel(level)
        handler.close()
