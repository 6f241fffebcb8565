"""Client for Cloudflare R2, or any S3-compatible store, signed with AWS Signature Version 4.

Configuration comes from environment variables, or from a `.env` file at the repository root, and
is read on each `R2Config.from_env()` call rather than at import. `.env.example` lists every
variable. `SEEWHY_DOTENV_PATH` points to another `.env` file, and an empty value turns `.env`
loading off.

    client = R2Client()
    client.upload("seewhy/run-1/loss.png", Path("loss.png"), content_type="image/png")
    url = client.presign_get("seewhy/run-1/loss.png", expires_in=600)

Requests are signed by `shared_lib.sigv4` (`sign_v4` and `presign_v4` are re-exported here). The
client sends no ACL headers, `aws-chunked` streaming payloads or `x-amz-checksum-*` headers, which
R2's S3 API does not fully implement. Every request carries `x-amz-content-sha256` with the real
SHA-256 of its body, which R2 checks against the body.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import email.utils
import hashlib
import io
import logging
import math
import os
import random
import re
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, NamedTuple
from urllib.parse import unquote, urlsplit

import requests
from dotenv import dotenv_values

from shared_lib.sigv4 import (
    EMPTY_SHA256,
    MAX_PRESIGN_EXPIRES,
    amz_date_now,
    encode_query,
    presign_v4,
    sign_v4,
    uri_encode,
)

__all__ = [
    "MAX_PARTS",
    "MAX_PRESIGN_EXPIRES",
    "MIN_PART_SIZE",
    "ObjectInfo",
    "R2Client",
    "R2Config",
    "R2Error",
    "dotenv_path",
    "presign_v4",
    "sign_v4",
]

logger = logging.getLogger(__name__)

MiB = 1024 * 1024

# R2 and S3 require every part of a multipart upload except the last to be at least 5 MiB, and
# R2 also requires those parts to have the same size. An upload has at most 10,000 parts.
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000

# Largest body sent in one PUT. S3 accepts up to 5 GiB in one PUT, and R2 documents a limit of
# about 5 GB; the 5 MiB margin keeps below both.
_MAX_SINGLE_PUT = 5 * 1024 * MiB - 5 * MiB

REQUIRED_VARIABLES = ("R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_ENDPOINT_URL", "R2_BUCKET_NAME")
_REPO_ROOT = Path(__file__).resolve().parent.parent

# Failures after which the same request may succeed: no connection, a timeout, or a response body
# cut short.
_RETRYABLE_EXCEPTIONS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

# S3 bucket naming rules: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending
# with a letter or digit.
_BUCKET_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


# ---------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------


def dotenv_path() -> Path | None:
    """Return the `.env` file to read, or None when `SEEWHY_DOTENV_PATH` is set to an empty value."""
    override = os.environ.get("SEEWHY_DOTENV_PATH")
    if override is None:
        return _REPO_ROOT / ".env"
    if override == "":
        return None
    return Path(override).expanduser()


def _read_settings() -> dict[str, str]:
    """Merge the `.env` file and the environment. Non-empty environment values win."""
    settings: dict[str, str] = {}
    path = dotenv_path()
    if path is not None and path.is_file():
        for name, value in dotenv_values(path).items():
            if value is not None and value.strip():
                settings[name] = value.strip()

    for name, value in os.environ.items():
        if value.strip():
            settings[name] = value.strip()
    return settings


@dataclasses.dataclass(frozen=True)
class R2Config:
    """Credentials and location of one R2 bucket.

    `endpoint_url` is the account's S3 endpoint, for example
    `https://<account-id>.r2.cloudflarestorage.com`. `base_url` is the bucket's public URL, if the
    bucket has one. R2 accepts any region and documents "auto".
    """

    access_key_id: str
    secret_access_key: str = dataclasses.field(repr=False)
    endpoint_url: str
    bucket_name: str
    base_url: str | None = None
    region: str = "auto"

    def __post_init__(self) -> None:
        if not self.access_key_id:
            raise ValueError("R2 access key id is empty")
        if not self.secret_access_key:
            raise ValueError("R2 secret access key is empty")
        if not self.region:
            raise ValueError("R2 region is empty. Use 'auto' for R2")

        endpoint = urlsplit(self.endpoint_url)
        if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
            raise ValueError(
                f"invalid R2 endpoint URL {self.endpoint_url!r}: expected http(s)://host[:port], "
                "for example https://<account-id>.r2.cloudflarestorage.com"
            )
        if endpoint.path.strip("/") or endpoint.query or endpoint.fragment:
            raise ValueError(
                f"invalid R2 endpoint URL {self.endpoint_url!r}: it must not contain a path or query. "
                "Set the bucket in R2_BUCKET_NAME"
            )
        object.__setattr__(self, "endpoint_url", self.endpoint_url.rstrip("/"))

        if not _BUCKET_NAME_PATTERN.fullmatch(self.bucket_name):
            raise ValueError(
                f"invalid bucket name {self.bucket_name!r}: use 3 to 63 lowercase letters, digits, "
                "dots and hyphens, starting and ending with a letter or digit"
            )
        if self.base_url is not None:
            base = urlsplit(self.base_url)
            if base.scheme not in ("http", "https") or not base.hostname:
                raise ValueError(f"invalid R2 base URL {self.base_url!r}: expected an http(s) URL")

    @classmethod
    def from_env(cls) -> R2Config:
        """Build the config from the environment and the `.env` file.

        Raises:
            ValueError: naming every required variable that is missing or empty.
        """
        settings = _read_settings()
        missing = [name for name in REQUIRED_VARIABLES if name not in settings]
        if missing:
            path = dotenv_path()
            source = f"the environment or {path}" if path is not None else "the environment"
            raise ValueError(
                f"missing R2 configuration: {', '.join(missing)}. Set them in {source}. "
                "See .env.example at the repository root for every variable."
            )
        return cls(
            access_key_id=settings["R2_ACCESS_KEY_ID"],
            secret_access_key=settings["R2_SECRET_ACCESS_KEY"],
            endpoint_url=settings["R2_ENDPOINT_URL"],
            bucket_name=settings["R2_BUCKET_NAME"],
            base_url=settings.get("R2_BASE_URL"),
        )


def _validate_config() -> R2Config:
    """Return the config from the environment, or raise ValueError naming what is missing."""
    return R2Config.from_env()


# ---------------------------------------------------------------------------------------------------
# Results and errors
# ---------------------------------------------------------------------------------------------------


class R2Error(Exception):
    """A failed R2 request.

    `status` is the HTTP status, or None when no response arrived (connection failures and
    timeouts, after the retries). `code` and `message` come from the S3 error body when it has one.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.key = key

    def __str__(self) -> str:
        details = []
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        if self.code:
            details.append(self.code)
        if self.key is not None:
            details.append(f"key {self.key!r}")
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def __repr__(self) -> str:
        return f"R2Error({self.message!r}, status={self.status!r}, code={self.code!r}, key={self.key!r})"


class ObjectInfo(NamedTuple):
    """Metadata of one stored object. `etag` has no surrounding quotes."""

    key: str
    size: int
    etag: str
    last_modified: dt.datetime


# ---------------------------------------------------------------------------------------------------
# Request bodies and responses
# ---------------------------------------------------------------------------------------------------


def _validate_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"invalid object key {key!r}: expected a non-empty string")
    if len(key.encode("utf-8")) > 1024:
        raise ValueError(f"invalid object key {key[:40]!r}...: longer than 1024 bytes in UTF-8")
    # requests and urllib3 resolve `.` and `..` path segments before sending, so such a key would
    # reach a different object than the one signed.
    if any(segment in (".", "..") for segment in key.split("/")):
        raise ValueError(f"invalid object key {key!r}: '.' and '..' path segments are not supported")


def _strip_quotes(etag: str) -> str:
    return etag.strip().strip('"')


def _local_name(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local_name(child) == name:
            return child.text or ""
    return None


def _parse_xml(body: bytes) -> ET.Element | None:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def _error_from_response(response: requests.Response, *, operation: str, key: str | None) -> R2Error:
    """Build an R2Error from an error response, with the S3 Code and Message when the body has them."""
    try:
        content = response.content
    except requests.RequestException:
        content = b""
    root = _parse_xml(content) if content else None
    code = message = None
    if root is not None and _local_name(root) == "Error":
        code = _child_text(root, "Code")
        message = _child_text(root, "Message")
    text = f"{operation} failed: {message or response.reason or 'no error message'}"
    return R2Error(text, status=response.status_code, code=code, key=key)


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Read `size` bytes, or fewer only at the end of the stream (raw files may return short reads)."""
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        if not isinstance(chunk, bytes):
            raise TypeError(f"expected a binary file object, but read() returned {type(chunk).__name__}")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _iter_parts(first: bytes, stream: BinaryIO, part_size: int) -> Iterator[bytes]:
    """Yield parts of exactly `part_size` bytes, the last possibly shorter, from `first` then `stream`."""
    buffer = first
    while True:
        if len(buffer) < part_size:
            buffer += _read_exactly(stream, part_size - len(buffer))
        if not buffer:
            return
        yield buffer[:part_size]
        if len(buffer) < part_size:
            return
        buffer = buffer[part_size:]


def _part_size_for(total_size: int | None, part_size: int) -> int:
    """Grow the part size in whole MiB when the object would otherwise need more than MAX_PARTS parts."""
    if total_size is None or math.ceil(total_size / part_size) <= MAX_PARTS:
        return part_size
    return math.ceil(total_size / MAX_PARTS / MiB) * MiB


# ---------------------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------------------


class R2Client:
    """Object operations on one R2 bucket, with retries and parallel multipart uploads.

    Args:
        config: bucket and credentials; None reads `R2Config.from_env()`.
        connect_timeout: seconds to wait for a TCP connection.
        read_timeout: seconds to wait between bytes of a response.
        max_retries: retries after the first attempt on connection errors, timeouts, 5xx and 429.
            Other 4xx responses are never retried.
        backoff: base delay in seconds; retry n waits a random time up to backoff * 2**n.
        max_backoff: cap on one delay, in seconds.
        multipart_threshold: bodies larger than this many bytes use a multipart upload.
        part_size: bytes per part, at least MIN_PART_SIZE (5 MiB). Every part but the last has
            this size, as R2 requires.
        max_workers: parts uploaded in parallel; also the number of parts held in memory.
        session: a requests.Session to send through, for example one with custom adapters. The
            client closes only a session that it created.

    The defaults, 8 MiB parts and 8 workers above a 16 MiB threshold, hold at most 9 parts
    (72 MiB) of one upload in memory. The part size is boto3's, and the worker count is close to
    boto3's 10 threads; docs/benchmarks.md compares the two on a local server.
    """

    def __init__(self, config: R2Config | None = None, *, connect_timeout: float = 10.0,
                 read_timeout: float = 60.0, max_retries: int = 4, backoff: float = 0.5,
                 max_backoff: float = 20.0, multipart_threshold: int = 16 * MiB, part_size: int = 8 * MiB,
                 max_workers: int = 8, session: requests.Session | None = None) -> None:
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError(f"timeouts must be positive, got connect {connect_timeout} and read {read_timeout}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        if backoff < 0 or max_backoff < 0:
            raise ValueError(f"backoff delays must be 0 or more, got {backoff} and {max_backoff}")
        if part_size < MIN_PART_SIZE:
            raise ValueError(
                f"part_size {part_size} is below the minimum part size of {MIN_PART_SIZE} bytes (5 MiB) "
                "that R2 accepts for every part but the last"
            )
        if not 0 <= multipart_threshold <= _MAX_SINGLE_PUT:
            raise ValueError(
                f"multipart_threshold {multipart_threshold} must be from 0 to {_MAX_SINGLE_PUT} bytes, "
                "the largest single PUT that R2 accepts"
            )
        if max_workers < 1:
            raise ValueError(f"max_workers must be 1 or more, got {max_workers}")

        self.config = config if config is not None else R2Config.from_env()
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_workers = max_workers
        self._owns_session = session is None
        self.session = session if session is not None else self._new_session(max_workers)
        self._host = urlsplit(self.config.endpoint_url).netloc.lower()

    @staticmethod
    def _new_session(max_workers: int) -> requests.Session:
        session = requests.Session()
        # At least one pooled connection per worker, so parallel parts do not queue for a connection.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(10, max_workers))
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def __repr__(self) -> str:
        return f"R2Client(endpoint_url={self.config.endpoint_url!r}, bucket_name={self.config.bucket_name!r})"

    def close(self) -> None:
        """Close the pooled connections, unless the session came from the caller."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> R2Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------------------

    def _url(self, bucket: str, key: str | None, query: Mapping[str, str] | None) -> str:
        url = f"{self.config.endpoint_url}/{uri_encode(bucket)}"
        if key is not None:
            url += "/" + uri_encode(key, keep_slash=True)
        if query:
            url += "?" + encode_query(query)
        return url

    def _signed_headers(self, method: str, url: str, payload_sha256: str, extra: Mapping[str, str]) -> dict[str, str]:
        amz_date = amz_date_now()
        headers = {"host": self._host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_sha256, **extra}
        headers["authorization"] = sign_v4(
            method, url, headers, payload_sha256,
            access_key_id=self.config.access_key_id, secret_access_key=self.config.secret_access_key,
            region=self.config.region, service="s3", amz_date=amz_date,
        )
        return headers

    def _request(self, method: str, *, key: str | None = None, query: Mapping[str, str] | None = None,
                 body: bytes = b"", headers: Mapping[str, str] | None = None, operation: str,
                 bucket: str | None = None, allowed: tuple[int, ...] = (200,),
                 stream: bool = False) -> requests.Response:
        """Send one signed request, retrying connection errors, timeouts, 5xx and 429 with backoff.

        Each attempt is signed again with a fresh date and sends the whole body again. Returns the
        response when its status is in `allowed`, and raises R2Error otherwise.
        """
        bucket = bucket if bucket is not None else self.config.bucket_name
        url = self._url(bucket, key, query)
        target = f"{bucket}/{key}" if key is not None else bucket
        payload_sha256 = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        attempts = self.max_retries + 1

        for attempt in range(attempts):
            is_last = attempt + 1 == attempts
            signed = self._signed_headers(method, url, payload_sha256, headers or {})
            started = time.perf_counter()
            try:
                response = self.session.request(method, url, data=body, headers=signed, timeout=self.timeout,
                                                stream=stream, allow_redirects=False)
            except _RETRYABLE_EXCEPTIONS as error:
                if is_last:
                    raise R2Error(f"{operation} failed after {attempts} attempts: {error}", key=key) from error
                self._wait_before_retry(attempt, operation, target, error.__class__.__name__)
                continue
            except requests.RequestException as error:
                raise R2Error(f"{operation} failed: {error}", key=key) from error

            logger.debug("%s %s: HTTP %d in %.3f s", operation, target, response.status_code,
                         time.perf_counter() - started)
            if response.status_code in allowed:
                return response
            error = _error_from_response(response, operation=operation, key=key)
            response.close()
            if (response.status_code >= 500 or response.status_code == 429) and not is_last:
                self._wait_before_retry(attempt, operation, target, str(error))
                continue
            raise error
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wait_before_retry(self, attempt: int, operation: str, target: str, reason: str) -> None:
        """Log the failed attempt and sleep a random time up to backoff * 2**attempt (capped)."""
        delay = random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))
        logger.warning("%s %s failed (%s); retry %d of %d in %.2f s", operation, target, reason, attempt + 1,
                       self.max_retries, delay)
        time.sleep(delay)

    # -- upload --------------------------------------------------------------------------------------

    def upload(self, key: str, data: bytes | str | os.PathLike | BinaryIO, *, content_type: str | None = None,
               cache_control: str | None = None) -> str:
        """Upload `data` to `key` and return the object's ETag (without quotes).

        `data` is bytes, a file path (str or PathLike) or a binary file object read from its current
        position. Bodies up to `multipart_threshold` bytes go in one PUT. Larger ones use a
        multipart upload whose parts are read one at a time and sent by `max_workers` threads, and
        the upload is aborted if any part fails.
        """
        _validate_key(key)
        headers = {}
        if content_type:
            headers["content-type"] = content_type
        if cache_control:
            headers["cache-control"] = cache_control

        if isinstance(data, (bytes, bytearray, memoryview)):
            body = bytes(data)
            if len(body) <= self.multipart_threshold:
                return self._put_object(key, body, headers)
            return self._upload_stream(key, io.BytesIO(body), len(body), headers)
        if isinstance(data, (str, os.PathLike)):
            path = Path(data)
            with path.open("rb") as stream:
                return self._upload_stream(key, stream, path.stat().st_size, headers)
        if hasattr(data, "read"):
            return self._upload_stream(key, data, _remaining_size(data), headers)
        raise TypeError(f"data must be bytes, a path or a binary file object, got {type(data).__name__}")

    def _upload_stream(self, key: str, stream: BinaryIO, size: int | None, headers: dict[str, str]) -> str:
        if size is not None and size > self.multipart_threshold:
            first = b""
        else:
            # Small or of unknown length: read just past the threshold to choose PUT or multipart.
            first = _read_exactly(stream, self.multipart_threshold + 1)
            if len(first) <= self.multipart_threshold:
                return self._put_object(key, first, headers)
        part_size = _part_size_for(size, self.part_size)
        return self._multipart_upload(key, _iter_parts(first, stream, part_size), headers)

    def _put_object(self, key: str, body: bytes, headers: Mapping[str, str]) -> str:
        response = self._request("PUT", key=key, body=body, headers=headers, operation="upload")
        return _strip_quotes(response.headers.get("ETag", ""))

    def _multipart_upload(self, key: str, parts: Iterator[bytes], headers: Mapping[str, str]) -> str:
        response = self._request("POST", key=key, query={"uploads": ""}, headers=headers,
                                 operation="create multipart upload")
        root = _parse_xml(response.content)
        upload_id = _child_text(root, "UploadId") if root is not None else None
        if not upload_id:
            raise R2Error("create multipart upload failed: no UploadId in the response",
                          status=response.status_code, key=key)
        logger.debug("multipart upload of %r started: upload id %s", key, upload_id)

        try:
            etags = self._upload_parts(key, upload_id, parts)
            etag = self._complete_multipart_upload(key, upload_id, etags)
        except BaseException as error:
            self._abort_multipart_upload(key, upload_id, error)
            raise
        logger.debug("multipart upload of %r completed in %d parts", key, len(etags))
        return etag

    def _upload_parts(self, key: str, upload_id: str, parts: Iterator[bytes]) -> list[str]:
        """Upload parts in parallel and return their ETags in part order.

        A semaphore holds the parts read ahead to `max_workers`, which bounds memory. The first
        failure stops further parts and is raised once the running ones have finished.
        """
        slots = threading.BoundedSemaphore(self.max_workers)
        failed = threading.Event()
        futures: list[concurrent.futures.Future[str]] = []

        def release(future: concurrent.futures.Future[str]) -> None:
            if future.cancelled() or future.exception() is not None:
                failed.set()
            slots.release()

        with concurrent.futures.ThreadPoolExecutor(self.max_workers, thread_name_prefix="r2-part") as pool:
            try:
                for number, body in enumerate(parts, start=1):
                    if number > MAX_PARTS:
                        raise R2Error(f"upload failed: the body needs more than {MAX_PARTS} parts. "
                                      "Raise part_size", key=key)
                    slots.acquire()
                    if failed.is_set():
                        slots.release()
                        break
                    future = pool.submit(self._upload_part, key, upload_id, number, body)
                    future.add_done_callback(release)
                    futures.append(future)
            except BaseException:
                failed.set()
                raise
            finally:
                if failed.is_set():
                    for future in futures:
                        future.cancel()

        for future in futures:
            if not future.cancelled() and future.exception() is not None:
                raise future.exception()
        return [future.result() for future in futures]

    def _upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        response = self._request("PUT", key=key, query={"partNumber": str(number), "uploadId": upload_id},
                                 body=body, operation=f"upload part {number}")
        etag = response.headers.get("ETag")
        if not etag:
            raise R2Error(f"upload part {number} failed: no ETag in the response", status=response.status_code,
                          key=key)
        return etag

    def _complete_multipart_upload(self, key: str, upload_id: str, etags: list[str]) -> str:
        root = ET.Element("CompleteMultipartUpload")
        for number, etag in enumerate(etags, start=1):
            part = ET.SubElement(root, "Part")
            ET.SubElement(part, "PartNumber").text = str(number)
            ET.SubElement(part, "ETag").text = etag
        body = ET.tostring(root, encoding="utf-8")
        response = self._request("POST", key=key, query={"uploadId": upload_id}, body=body,
                                 headers={"content-type": "application/xml"},
                                 operation="complete multipart upload")

        # S3 may respond with 200 and still report an error in the body.
        result = _parse_xml(response.content)
        if result is None or _local_name(result) == "Error":
            code = _child_text(result, "Code") if result is not None else None
            message = _child_text(result, "Message") if result is not None else "unreadable response"
            raise R2Error(f"complete multipart upload failed: {message}", status=response.status_code,
                          code=code, key=key)
        return _strip_quotes(_child_text(result, "ETag") or "")

    def _abort_multipart_upload(self, key: str, upload_id: str, cause: BaseException) -> None:
        logger.warning("multipart upload of %r failed (%s); aborting upload id %s", key, cause, upload_id)
        try:
            self._request("DELETE", key=key, query={"uploadId": upload_id}, allowed=(200, 204),
                          operation="abort multipart upload")
        except R2Error as error:
            # The caller re-raises the original failure. The unfinished upload keeps its parts until
            # it is aborted or a bucket lifecycle rule removes it, and list_multipart_uploads shows it.
            logger.warning("aborting multipart upload %s of %r failed: %s", upload_id, key, error)

    # -- download, metadata, listing, deletion -------------------------------------------------------

    def download(self, key: str) -> bytes:
        """Return the object's bytes."""
        _validate_key(key)
        response = self._request("GET", key=key, headers={"accept-encoding": "identity"}, operation="download")
        return response.content

    def download_to(self, key: str, path: str | os.PathLike) -> Path:
        """Stream the object into `path` and return the path.

        The bytes go to a temporary file in the same folder, which replaces `path` only when the
        whole object has arrived. A body cut short is fetched again, up to `max_retries` times.
        When the download fails, the temporary file is removed and `path` is left as it was.
        """
        _validate_key(key)
        path = Path(path)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        os.close(descriptor)
        try:
            self._stream_to_file(key, Path(temporary))
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
        return path

    def _stream_to_file(self, key: str, path: Path) -> None:
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            response = self._request("GET", key=key, headers={"accept-encoding": "identity"}, operation="download",
                                     stream=True)
            try:
                with response, path.open("wb") as output:
                    for chunk in response.iter_content(chunk_size=MiB):
                        output.write(chunk)
                return
            except _RETRYABLE_EXCEPTIONS as error:
                if attempt + 1 == attempts:
                    raise R2Error(f"download failed while reading the body: {error}", key=key) from error
                self._wait_before_retry(attempt, "download", f"{self.config.bucket_name}/{key}",
                                        error.__class__.__name__)
            except requests.RequestException as error:
                raise R2Error(f"download failed while reading the body: {error}", key=key) from error

    def head(self, key: str) -> ObjectInfo | None:
        """Return the object's metadata, or None when no object has this key."""
        _validate_key(key)
        response = self._request("HEAD", key=key, allowed=(200, 404), operation="head")
        if response.status_code == 404:
            return None
        return ObjectInfo(
            key=key,
            size=int(response.headers["Content-Length"]),
            etag=_strip_quotes(response.headers.get("ETag", "")),
            last_modified=email.utils.parsedate_to_datetime(response.headers["Last-Modified"]),
        )

    def exists(self, key: str) -> bool:
        """Return whether an object has this key."""
        return self.head(key) is not None

    def iter_objects(self, prefix: str = "", *, max_keys: int = 1000) -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with `prefix`, in key order, `max_keys` per request.

        Follows ListObjectsV2 continuation tokens until the listing is complete.
        """
        if not 1 <= max_keys <= 1000:
            raise ValueError(f"max_keys must be from 1 to 1000, got {max_keys}")
        token = None
        while True:
            query = {"list-type": "2", "encoding-type": "url", "max-keys": str(max_keys), "prefix": prefix}
            if token:
                query["continuation-token"] = token
            response = self._request("GET", query=query, operation="list objects")
            root = _parse_xml(response.content)
            if root is None:
                raise R2Error("list objects failed: the response is not XML", status=response.status_code)

            # Keys come back percent-encoded only when the server honoured encoding-type=url.
            url_encoded = (_child_text(root, "EncodingType") or "").lower() == "url"
            for entry in root:
                if _local_name(entry) == "Contents":
                    yield _object_info_from_xml(entry, url_encoded)

            token = _child_text(root, "NextContinuationToken")
            if (_child_text(root, "IsTruncated") or "").lower() != "true":
                return
            if not token:
                raise R2Error("list objects failed: truncated listing without a continuation token",
                              status=response.status_code)

    def list(self, prefix: str = "", *, max_keys: int = 1000) -> list[ObjectInfo]:
        """Return every object whose key starts with `prefix`, in key order."""
        return [*self.iter_objects(prefix, max_keys=max_keys)]

    def delete(self, key: str) -> None:
        """Delete the object. Deleting a key that does not exist succeeds too."""
        _validate_key(key)
        self._request("DELETE", key=key, allowed=(200, 204), operation="delete")

    def list_multipart_uploads(self, prefix: str = "") -> list[tuple[str, str]]:
        """Return the key and upload id of every unfinished multipart upload under `prefix`.

        An upload that was neither completed nor aborted keeps its parts stored until it is
        aborted or a lifecycle rule removes it.
        """
        uploads = []
        markers: dict[str, str] = {}
        while True:
            response = self._request("GET", query={"uploads": "", "prefix": prefix, **markers},
                                     operation="list multipart uploads")
            root = _parse_xml(response.content)
            if root is None:
                raise R2Error("list multipart uploads failed: the response is not XML", status=response.status_code)
            for entry in root:
                if _local_name(entry) == "Upload":
                    uploads.append((_child_text(entry, "Key") or "", _child_text(entry, "UploadId") or ""))
            if (_child_text(root, "IsTruncated") or "").lower() != "true":
                return uploads
            markers = {"key-marker": _child_text(root, "NextKeyMarker") or "",
                       "upload-id-marker": _child_text(root, "NextUploadIdMarker") or ""}

    # -- URLs and buckets ----------------------------------------------------------------------------

    def presign_get(self, key: str, expires_in: int = 3600) -> str:
        """Return a URL that fetches the object without credentials for `expires_in` seconds (1 to 604800)."""
        _validate_key(key)
        return presign_v4(
            "GET", self._url(self.config.bucket_name, key, None),
            access_key_id=self.config.access_key_id, secret_access_key=self.config.secret_access_key,
            region=self.config.region, service="s3", amz_date=amz_date_now(), expires_in=expires_in,
        )

    def public_url(self, key: str) -> str | None:
        """Return the object's URL under `R2_BASE_URL`, or None when the bucket has no public URL."""
        _validate_key(key)
        if self.config.base_url is None:
            return None
        return f"{self.config.base_url.rstrip('/')}/{uri_encode(key, keep_slash=True)}"

    def create_bucket(self, name: str) -> None:
        """Create a bucket on the endpoint (tests use it against a local S3 server)."""
        if not _BUCKET_NAME_PATTERN.fullmatch(name):
            raise ValueError(f"invalid bucket name {name!r}: use 3 to 63 lowercase letters, digits, dots and hyphens")
        self._request("PUT", bucket=name, operation="create bucket")

    def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket."""
        if not _BUCKET_NAME_PATTERN.fullmatch(name):
            raise ValueError(f"invalid bucket name {name!r}: use 3 to 63 lowercase letters, digits, dots and hyphens")
        self._request("DELETE", bucket=name, allowed=(200, 204), operation="delete bucket")


def _object_info_from_xml(entry: ET.Element, url_encoded: bool) -> ObjectInfo:
    key = _child_text(entry, "Key") or ""
    if url_encoded:
        # S3 encodes keys like a form: a space becomes '+', and a literal '+' becomes '%2B'.
        key = unquote(key.replace("+", " "))
    return ObjectInfo(
        key=key,
        size=int(_child_text(entry, "Size") or 0),
        etag=_strip_quotes(_child_text(entry, "ETag") or ""),
        last_modified=dt.datetime.fromisoformat(_child_text(entry, "LastModified") or ""),
    )


def _remaining_size(stream: BinaryIO) -> int | None:
    """Return the bytes left in a seekable stream, or None when it cannot seek."""
    try:
        if not stream.seekable():
            return None
        position = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(position)
    except (AttributeError, OSError):
        return None
    return end - position
