"""Tests for shared_lib.experiment: config parsing, run ids, timing and logging set-up."""

import dataclasses
import datetime as dt
import logging
import re
from dataclasses import field
from typing import Literal

import pytest

from shared_lib.experiment import (
    PhaseTimer,
    build_parser,
    capture_run_log,
    configure_logging,
    new_run_id,
    package_versions,
    parse_config,
)


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    lr: float = field(default=1e-3, metadata={"help": "learning rate"})
    order: Literal["shuffled", "sorted"] = field(default="shuffled", metadata={"help": "stream order"})
    n_train: int | None = field(default=None, metadata={"help": "training examples; all when unset"})
    quiet: bool = field(default=False, metadata={"help": "hide progress"})

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")


def test_parse_config_types():
    config = parse_config(ToyConfig, ["--lr", "0.5", "--order", "sorted", "--n-train", "12", "--quiet"])
    assert config == ToyConfig(lr=0.5, order="sorted", n_train=12, quiet=True)


def test_parse_config_defaults():
    assert parse_config(ToyConfig, []) == ToyConfig()


def test_help_shows_defaults_and_choices():
    text = build_parser(ToyConfig).format_help()
    assert "learning rate (default: 0.001)" in text
    assert "{shuffled,sorted}" in text
    assert "--quiet, --no-quiet" in text


def test_invalid_choice_exits(capsys):
    with pytest.raises(SystemExit) as error:
        parse_config(ToyConfig, ["--order", "random"])
    assert error.value.code == 2
    assert "invalid choice: 'random'" in capsys.readouterr().err


def test_config_error_becomes_usage_error(capsys):
    with pytest.raises(SystemExit) as error:
        parse_config(ToyConfig, ["--lr", "-1"])
    assert error.value.code == 2
    assert "--lr must be positive, got -1.0" in capsys.readouterr().err


def test_run_id_format():
    run_id = new_run_id("online", now=dt.datetime(2026, 12, 4, 15, 30, 12))
    assert re.fullmatch(r"online-20261204-153012-[0-9a-f]{4}", run_id)
    assert new_run_id("online") != new_run_id("online")


def test_package_versions_lists_jax():
    versions = package_versions()
    assert re.fullmatch(r"\d+\.\d+.*", versions["jax"])
    assert versions["python"].startswith("3.")


def test_phase_timer_accumulates():
    timer = PhaseTimer()
    with timer.phase("data"):
        pass
    with timer.phase("data"):
        pass
    with pytest.raises(RuntimeError):
        with timer.phase("training"):
            raise RuntimeError("stop")
    assert set(timer.seconds) == {"data", "training"}
    assert timer.total == pytest.approx(sum(timer.seconds.values()))


def test_log_file_gets_info(tmp_path):
    log_file = tmp_path / "run.log"
    configure_logging(quiet=True, log_file=str(log_file))
    try:
        logging.getLogger("projects.toy").info("saved figure to %s", "x.png")
        logging.getLogger("jax._src.xla_bridge").info("Unable to initialize backend 'tpu'")
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            handler.close()
            root.removeHandler(handler)
    text = log_file.read_text()
    assert "saved figure to x.png" in text
    assert "tpu" not in text


def test_run_log_captures_named_loggers(tmp_path):
    toy = logging.getLogger("projects.toy")
    other = logging.getLogger("elsewhere")

    with capture_run_log(tmp_path / "run.log", ["projects.toy"]) as path:
        toy.info("step %d done", 3)
        other.warning("not captured")
    toy.info("after the block")

    text = path.read_text()
    assert "INFO projects.toy: step 3 done" in text
    assert "not captured" not in text
    assert "after the block" not in text
    assert toy.handlers == []


def test_run_log_restores_level(tmp_path):
    toy = logging.getLogger("projects.quiet_toy")
    toy.setLevel(logging.WARNING)

    with capture_run_log(tmp_path / "run.log", ["projects.quiet_toy"]):
        toy.info("recorded although the logger was at WARNING")

    assert toy.level == logging.WARNING
    assert "recorded although" in (tmp_path / "run.log").read_text()


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))
