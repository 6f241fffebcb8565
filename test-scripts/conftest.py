"""Shared pytest fixtures: an isolated environment for every test, and a local S3 server.

The S3 server is SeaweedFS bound to 127.0.0.1 (see seaweed.py). It starts only when a test requests
`s3_server`, `s3_server_factory` or `r2_env`, so test files that need no server do not pay for it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared_lib.r2 import R2Client, R2Config


def _import_seaweed():
    """Import seaweed.py from this folder; pytest's importlib mode does not put the folder on sys.path."""
    if "seaweed" in sys.modules:
        return sys.modules["seaweed"]
    spec = importlib.util.spec_from_file_location("seaweed", Path(__file__).with_name("seaweed.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["seaweed"] = module
    spec.loader.exec_module(module)
    return module


seaweed = _import_seaweed()


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep every test away from a developer's `.env`, R2 credentials and outputs folder."""
    monkeypatch.setenv("SEEWHY_DOTENV_PATH", "")
    monkeypatch.setenv("SEEWHY_OUTPUT_DIR", str(tmp_path / "outputs"))
    for name in list(os.environ):
        if name.startswith("R2_"):
            monkeypatch.delenv(name)


def _start_server() -> seaweed.S3Server:
    # A short folder under /tmp, because unix socket paths are limited to about 100 characters.
    directory = Path(tempfile.mkdtemp(prefix="sw", dir="/tmp"))
    try:
        return seaweed.start_server(directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _stop_server(server: seaweed.S3Server) -> None:
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[seaweed.S3Server]:
    """A SeaweedFS S3 server shared by the whole session."""
    server = _start_server()
    yield server
    _stop_server(server)


@pytest.fixture
def s3_server_factory() -> Iterator[Callable[[], seaweed.S3Server]]:
    """A function that starts an independent S3 server. Every server it started stops at teardown."""
    started: list[seaweed.S3Server] = []

    def start() -> seaweed.S3Server:
        server = _start_server()
        started.append(server)
        return server

    yield start
    for server in started:
        _stop_server(server)


def server_config(server: seaweed.S3Server, bucket_name: str) -> R2Config:
    """Return an R2Config that points at `server` and `bucket_name`."""
    return R2Config(
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
        endpoint_url=server.endpoint_url,
        bucket_name=bucket_name,
        region=server.region,
    )


@pytest.fixture
def r2_env(s3_server: seaweed.S3Server, monkeypatch: pytest.MonkeyPatch) -> R2Config:
    """Create a fresh bucket on `s3_server`, point the R2_* variables at it and return its config."""
    config = server_config(s3_server, f"seewhy-test-{uuid.uuid4().hex[:16]}")
    with R2Client(config) as client:
        client.create_bucket(config.bucket_name)

    monkeypatch.setenv("R2_ACCESS_KEY_ID", config.access_key_id)
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", config.secret_access_key)
    monkeypatch.setenv("R2_ENDPOINT_URL", config.endpoint_url)
    monkeypatch.setenv("R2_BUCKET_NAME", config.bucket_name)
    monkeypatch.delenv("R2_BASE_URL", raising=False)
    monkeypatch.delenv("R2_KEY_PREFIX", raising=False)
    return config
