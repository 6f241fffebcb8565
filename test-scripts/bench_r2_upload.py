"""Benchmark R2Client.upload against boto3's upload_file on a local SeaweedFS S3 server.

    flock /tmp/seewhy-bench.lock uv run python test-scripts/bench_r2_upload.py

Starts its own SeaweedFS on 127.0.0.1, writes a random file (64 MiB by default) and uploads it
with both clients in alternating order, after one untimed warm-up upload each. It prints every
time, then for each client the median seconds, MiB/s and CPU seconds of the client process and of
the server, and the ratio of the median times. boto3 runs with its default TransferConfig (8 MiB
threshold and parts, 10 threads). The default run of 9 repeats takes about 30 s on 2 shared cores.
Both sides share one process, so machine load affects both.
"""

from __future__ import annotations

import os

# Avoids a botocore stall after zero-byte uploads. It must be set before boto3 is imported.
os.environ["BOTO_EXPERIMENTAL__NO_EMPTY_CONTINUE"] = "true"

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import hashlib  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import boto3  # noqa: E402
import botocore.config  # noqa: E402
from seaweed import S3Server, start_server  # noqa: E402

from shared_lib.r2 import R2Client, R2Config  # noqa: E402

MiB = 1024 * 1024
BUCKET = "seewhy-bench"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=64, help="size of the uploaded file in MiB")
    parser.add_argument("--repeats", type=int, default=9, help="timed uploads per client")
    parser.add_argument("--part-size-mib", type=int, default=None,
                        help="R2Client part size in MiB (default: the client's default)")
    parser.add_argument("--threshold-mib", type=int, default=None,
                        help="R2Client multipart threshold in MiB (default: the client's default)")
    parser.add_argument("--workers", type=int, default=None,
                        help="R2Client parallel part uploads (default: the client's default)")
    return parser.parse_args()


def make_r2_client(server: S3Server, arguments: argparse.Namespace) -> R2Client:
    config = R2Config(server.access_key_id, server.secret_access_key, server.endpoint_url, BUCKET,
                      region=server.region)
    options = {}
    if arguments.part_size_mib is not None:
        options["part_size"] = arguments.part_size_mib * MiB
    if arguments.threshold_mib is not None:
        options["multipart_threshold"] = arguments.threshold_mib * MiB
    if arguments.workers is not None:
        options["max_workers"] = arguments.workers
    return R2Client(config, **options)


def make_boto3_client(server: S3Server):
    return boto3.client(
        "s3", endpoint_url=server.endpoint_url, aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key, region_name="us-east-1",
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )


class Measurement(NamedTuple):
    """Wall time and CPU time in seconds of one upload. The server's CPU is None where /proc is missing."""

    wall: float
    client_cpu: float
    server_cpu: float | None


def process_cpu_seconds(pid: int) -> float | None:
    """Return user + system CPU seconds of a process from /proc, or None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(upload: Callable[[], object], server: S3Server) -> Measurement:
    server_before = process_cpu_seconds(server.process.pid)
    client_before = own_cpu_seconds()
    started = time.perf_counter()
    upload()
    wall = time.perf_counter() - started
    server_after = process_cpu_seconds(server.process.pid)
    server_cpu = server_after - server_before if server_before is not None and server_after is not None else None
    return Measurement(wall, own_cpu_seconds() - client_before, server_cpu)


def check_upload(client: R2Client, key: str, expected_md5: str) -> None:
    """Raise RuntimeError unless the stored object has the file's bytes."""
    if hashlib.md5(client.download(key)).hexdigest() != expected_md5:
        raise RuntimeError(f"the object {key!r} does not match the uploaded file")


def run(arguments: argparse.Namespace, directory: Path) -> tuple[dict[str, list[Measurement]], str]:
    """Upload the file with both clients, and return the timed measurements and the R2Client settings."""
    server = start_server(directory / "s3")
    try:
        r2_client = make_r2_client(server, arguments)
        boto3_client = make_boto3_client(server)
        r2_client.create_bucket(BUCKET)

        data = os.urandom(arguments.size_mib * MiB)
        path = directory / "upload.bin"
        path.write_bytes(data)
        expected_md5 = hashlib.md5(data).hexdigest()
        del data

        uploads = {
            "R2Client.upload": lambda: r2_client.upload("bench/r2client.bin", path),
            "boto3 upload_file": lambda: boto3_client.upload_file(str(path), BUCKET, "bench/boto3.bin"),
        }
        for upload in uploads.values():
            upload()
        check_upload(r2_client, "bench/r2client.bin", expected_md5)
        check_upload(r2_client, "bench/boto3.bin", expected_md5)

        seconds: dict[str, list[Measurement]] = {name: [] for name in uploads}
        names = list(uploads)
        for repeat in range(arguments.repeats):
            # Alternate which client goes first, so drift in machine load hits both alike.
            for name in names if repeat % 2 == 0 else names[::-1]:
                seconds[name].append(measure(uploads[name], server))
                print(f"repeat {repeat + 1}: {name:<18} {seconds[name][-1].wall:.3f} s", flush=True)
        settings = (f"R2Client part size {r2_client.part_size // MiB} MiB, threshold "
                    f"{r2_client.multipart_threshold // MiB} MiB, {r2_client.max_workers} workers")
        return seconds, settings
    finally:
        server.stop()


def report(arguments: argparse.Namespace, seconds: dict[str, list[Measurement]], settings: str) -> None:
    print()
    print(f"date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, boto3 {boto3.__version__}")
    print(f"file: {arguments.size_mib} MiB, {arguments.repeats} timed uploads per client, {settings}")
    print(f"{'client':<18} {'median s':>9} {'MiB/s':>8} {'client CPU s':>13} {'server CPU s':>13}   all runs (s)")
    medians = {}
    for name, values in seconds.items():
        medians[name] = statistics.median(value.wall for value in values)
        client_cpu = statistics.median(value.client_cpu for value in values)
        server_cpus = [value.server_cpu for value in values if value.server_cpu is not None]
        server_cpu = f"{statistics.median(server_cpus):.2f}" if server_cpus else "n/a"
        runs = " ".join(f"{value.wall:.3f}" for value in values)
        print(f"{name:<18} {medians[name]:>9.3f} {arguments.size_mib / medians[name]:>8.1f} {client_cpu:>13.2f} "
              f"{server_cpu:>13}   {runs}")
    ratio = medians["boto3 upload_file"] / medians["R2Client.upload"]
    print(f"boto3 median / R2Client median: {ratio:.2f} (above 1 means R2Client is faster)")


def main() -> None:
    arguments = parse_arguments()
    # A short folder under /tmp, because unix socket paths are limited to about 100 characters.
    directory = Path(tempfile.mkdtemp(prefix="swb", dir="/tmp"))
    try:
        seconds, settings = run(arguments, directory)
        report(arguments, seconds, settings)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
