"""Tests for shared_lib.r2 and shared_lib.sigv4: the signer, the configuration and the client.

Run with `uv run pytest test-scripts/test_r2.py` or `uv run python test-scripts/test_r2.py`
(about 15 s on 2 cores; the SeaweedFS server starts once and takes about a second).

SeaweedFS checks signatures but not the payload hash, the region of the credential scope or
double-encoded paths, all of which R2 checks. Known-answer tests and a capturing HTTP server
cover those, and the server-backed tests cover everything else.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import http.server
import io
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from shared_lib import r2, sigv4
from shared_lib.r2 import MIN_PART_SIZE, ObjectInfo, R2Client, R2Config, R2Error

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024

# The AWS SigV4 test suite file next to the checkout; SEEWHY_SIGV4_TESTSUITE overrides the path.
SUITE_PATH = Path(
    os.environ.get("SEEWHY_SIGV4_TESTSUITE")
    or REPO_ROOT.parent / "shared" / "testdata" / "sigv4" / "aws-sigv4-testsuite.json"
)

# Object keys that must round-trip exactly: each is uploaded, listed, downloaded and deleted.
ROUND_TRIP_KEYS = [
    "plain.txt",
    "with space/file name.png",
    "plus+equals=tilde~.bin",
    "percent%20literal%.txt",
    "quotes'(paren)*star.txt",
    "ümlaut/日本語/ファイル.png",
    "emoji 🎉/ok.txt",
    "semi;colon,comma&amp@at$dollar!.txt",
    "question?hash#.txt",
    "trailing space ",
]
# SeaweedFS 4.48 stores keys as file paths, so it collapses repeated slashes and drops leading and
# trailing ones, while R2 keeps every slash. test_wire_request_headers checks that the client sends
# them unchanged.
SLASH_KEYS = ["double//slash.txt", "/leading-slash.txt", "trailing-slash/"]


# ---------------------------------------------------------------------------------------------------
# AWS SigV4 test suite
# ---------------------------------------------------------------------------------------------------


def _load_suite() -> dict | None:
    if not SUITE_PATH.is_file():
        return None
    return json.loads(SUITE_PATH.read_text())


def _suite_cases() -> list:
    suite = _load_suite()
    if suite is None:
        reason = f"AWS SigV4 test suite not found at {SUITE_PATH}; set SEEWHY_SIGV4_TESTSUITE to its path"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="suite-missing")]
    return [pytest.param(case, id=case["name"]) for case in suite["tests"]]


def _parse_request(text: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """Split a raw HTTP request of the suite into method, URL, header pairs and body."""
    head, _, body = text.partition("\n\n")
    request_line, *header_lines = head.split("\n")
    method, _, target = request_line.partition(" ")
    target = target.rsplit(" HTTP/", 1)[0]
    headers = []
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.append((name, value))
    host = next(value for name, value in headers if name.lower() == "host")
    return method, f"https://{host}{target}", headers, body.encode("utf-8")


def _suite_credentials() -> dict:
    config = _load_suite()["config"]
    return {
        "access_key_id": config["accessKeyId"],
        "secret_access_key": config["secretAccessKey"],
        "region": config["region"],
        "service": config["service"],
    }


def _signed_header_names(authorization: str) -> set[str]:
    return set(authorization.split("SignedHeaders=")[1].split(",")[0].split(";"))


@pytest.mark.parametrize("case", _suite_cases())
def test_suite_canonical_request(case):
    method, url, headers, body = _parse_request(case["req"])
    payload_sha256 = hashlib.sha256(body).hexdigest()

    request, _ = sigv4.build_canonical_request(method, url, headers, payload_sha256,
                                               service=_suite_credentials()["service"])

    assert request == case["creq"]


@pytest.mark.parametrize("case", _suite_cases())
def test_suite_signature(case):
    # Sign exactly the headers that the expected Authorization lists. For all cases but one that is
    # every header of the request. In post-x-www-form-urlencoded, the file's creq signs the
    # Content-Length header, but its sts and authz were computed without it, as in AWS's original
    # suite, where that request has no Content-Length.
    method, url, headers, body = _parse_request(case["req"])
    signed_names = _signed_header_names(case["authz"])
    headers = [(name, value) for name, value in headers if name.lower() in signed_names]
    payload_sha256 = hashlib.sha256(body).hexdigest()
    amz_date = next(value for name, value in headers if name.lower() == "x-amz-date")
    credentials = _suite_credentials()

    request, _ = sigv4.build_canonical_request(method, url, headers, payload_sha256, service=credentials["service"])
    scope = sigv4.credential_scope(amz_date, credentials["region"], credentials["service"])
    authorization = sigv4.sign_v4(method, url, headers, payload_sha256, amz_date=amz_date, **credentials)

    assert sigv4.string_to_sign(amz_date, scope, request) == case["sts"]
    assert authorization == case["authz"]


# ---------------------------------------------------------------------------------------------------
# Signer known-answer tests
# ---------------------------------------------------------------------------------------------------

# Examples of the Amazon S3 API Reference, "Signature Calculations for the Authorization Header:
# Transferring Payload in a Single Chunk" and "Authenticating Requests: Using Query Parameters".
AWS_DOCS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_DOCS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_DOCS_DATE = "20130524T000000Z"
AWS_DOCS_CREDENTIALS = {"access_key_id": AWS_DOCS_ACCESS_KEY_ID, "secret_access_key": AWS_DOCS_SECRET,
                        "region": "us-east-1", "service": "s3", "amz_date": AWS_DOCS_DATE}


def test_sign_v4_s3_get_object_example():
    headers = {"Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9",
               "x-amz-content-sha256": sigv4.EMPTY_SHA256, "x-amz-date": AWS_DOCS_DATE}

    authorization = sigv4.sign_v4("GET", "https://examplebucket.s3.amazonaws.com/test.txt", headers,
                                  sigv4.EMPTY_SHA256, **AWS_DOCS_CREDENTIALS)

    assert authorization.endswith("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_sign_v4_s3_put_object_example():
    body = b"Welcome to Amazon S3."
    payload_sha256 = hashlib.sha256(body).hexdigest()
    headers = {"Host": "examplebucket.s3.amazonaws.com", "Date": "Fri, 24 May 2013 00:00:00 GMT",
               "x-amz-storage-class": "REDUCED_REDUNDANCY", "x-amz-content-sha256": payload_sha256,
               "x-amz-date": AWS_DOCS_DATE}

    authorization = sigv4.sign_v4("PUT", "https://examplebucket.s3.amazonaws.com/test%24file.text", headers,
                                  payload_sha256, **AWS_DOCS_CREDENTIALS)

    assert payload_sha256 == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    assert authorization.endswith("Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")


def test_presign_v4_s3_example():
    url = sigv4.presign_v4("GET", "https://examplebucket.s3.amazonaws.com/test.txt", expires_in=86400,
                           **AWS_DOCS_CREDENTIALS)

    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Credential"] == [f"{AWS_DOCS_ACCESS_KEY_ID}/20130524/us-east-1/s3/aws4_request"]
    assert query["X-Amz-Expires"] == ["86400"]
    assert query["X-Amz-Signature"] == ["aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"]


@pytest.mark.parametrize(("path", "expected"), [
    ("/bucket/a%20b/c", "/bucket/a%20b/c"),
    ("/bucket/a b/c", "/bucket/a%20b/c"),
    ("/bucket/x%2By%3Dz~", "/bucket/x%2By%3Dz~"),
    ("/bucket/x+y", "/bucket/x%2By"),
    ("/bucket/100%25", "/bucket/100%25"),
    ("/bucket/%27%28%29%2A", "/bucket/%27%28%29%2A"),
    ("/bucket/'()*", "/bucket/%27%28%29%2A"),
    ("/bucket/%c3%bc", "/bucket/%C3%BC"),
    ("/bucket/%7Etilde", "/bucket/~tilde"),
    ("/bucket/a//b/./c/../d/", "/bucket/a//b/./c/../d/"),
    ("", "/"),
])
def test_canonical_uri_s3(path, expected):
    assert sigv4.canonical_uri(path, service="s3") == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("/example%20space/", "/example%2520space/"),
    ("/a/./b/../c//d/", "/a/c/d/"),
    ("//example//", "/example/"),
    ("/example/..", "/"),
    ("/..", "/"),
    ("/%E1%88%B4", "/%25E1%2588%25B4"),
    ("", "/"),
])
def test_canonical_uri_generic(path, expected):
    assert sigv4.canonical_uri(path, service="service") == expected


def test_canonical_query_string_order():
    query = "b=2&a=z&a=y&empty&c=%7E~&d=a%20b+c&e=%2F/"

    assert sigv4.canonical_query_string(query) == "a=y&a=z&b=2&c=~~&d=a%20b%2Bc&e=%2F%2F&empty="


def test_canonical_request_s3_key():
    body = b"figure bytes"
    payload_sha256 = hashlib.sha256(body).hexdigest()
    headers = {"Host": "acct.r2.cloudflarestorage.com", "X-Amz-Date": "20260101T000000Z",
               "X-Amz-Content-SHA256": payload_sha256, "Content-Type": "image/png"}
    url = "https://acct.r2.cloudflarestorage.com/figs/run%201/loss%2Bacc%20100%25%3D.png"

    request, signed_headers = sigv4.build_canonical_request("PUT", url, headers, payload_sha256, service="s3")

    assert request == (
        "PUT\n"
        "/figs/run%201/loss%2Bacc%20100%25%3D.png\n"
        "\n"
        "content-type:image/png\n"
        "host:acct.r2.cloudflarestorage.com\n"
        f"x-amz-content-sha256:{payload_sha256}\n"
        "x-amz-date:20260101T000000Z\n"
        "\n"
        "content-type;host;x-amz-content-sha256;x-amz-date\n"
        f"{payload_sha256}"
    )
    assert signed_headers == "content-type;host;x-amz-content-sha256;x-amz-date"


def test_canonical_headers_trim_and_join():
    headers = [("My-Header", "  a   b  "), ("host", "h"), ("my-header", "c")]

    block, signed = sigv4.canonical_headers(headers)

    assert block == "host:h\nmy-header:a b,c\n"
    assert signed == "host;my-header"


def test_sign_v4_region_in_scope():
    headers = {"host": "h.example", "x-amz-date": "20260101T000000Z"}

    authorization = sigv4.sign_v4("GET", "https://h.example/b/k", headers, sigv4.EMPTY_SHA256,
                                  access_key_id="AKID", secret_access_key="secret", region="weur",
                                  service="s3", amz_date="20260101T000000Z")
    other_region = sigv4.sign_v4("GET", "https://h.example/b/k", headers, sigv4.EMPTY_SHA256,
                                 access_key_id="AKID", secret_access_key="secret", region="auto",
                                 service="s3", amz_date="20260101T000000Z")

    assert "Credential=AKID/20260101/weur/s3/aws4_request," in authorization
    assert authorization.split("Signature=")[1] != other_region.split("Signature=")[1]


def test_sign_v4_payload_hash_signed():
    headers = {"host": "h.example", "x-amz-date": "20260101T000000Z"}
    arguments = {"access_key_id": "AKID", "secret_access_key": "secret", "region": "auto", "service": "s3",
                 "amz_date": "20260101T000000Z"}

    first = sigv4.sign_v4("PUT", "https://h.example/b/k", headers, hashlib.sha256(b"a").hexdigest(), **arguments)
    second = sigv4.sign_v4("PUT", "https://h.example/b/k", headers, hashlib.sha256(b"b").hexdigest(), **arguments)

    assert first != second


@pytest.mark.parametrize("key", ROUND_TRIP_KEYS + SLASH_KEYS + ["a/./b/../c"])
def test_sign_v4_matches_botocore(key):
    botocore_auth = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    amz_date = "20260101T120000Z"
    payload_sha256 = hashlib.sha256(b"body").hexdigest()
    url = f"http://127.0.0.1:9000/bucket/{quote(key, safe='/~')}?partNumber=2&uploadId=a%2Bb"
    headers = {"X-Amz-Date": amz_date, "X-Amz-Content-SHA256": payload_sha256}
    request = AWSRequest(method="PUT", url=url, headers=headers, data=b"body")
    request.context["timestamp"] = amz_date
    signer = botocore_auth.S3SigV4Auth(Credentials("AKID", "secret"), "s3", "auto")
    expected_request = signer.canonical_request(request)
    expected_signature = signer.signature(signer.string_to_sign(request, expected_request), request)

    ours, _ = sigv4.build_canonical_request("PUT", url, {**headers, "host": "127.0.0.1:9000"}, payload_sha256,
                                            service="s3")
    authorization = sigv4.sign_v4("PUT", url, {**headers, "host": "127.0.0.1:9000"}, payload_sha256,
                                  access_key_id="AKID", secret_access_key="secret", region="auto", service="s3",
                                  amz_date=amz_date)

    assert ours == expected_request
    assert authorization.endswith(f"Signature={expected_signature}")


@pytest.mark.parametrize("amz_date", ["2026-01-01T00:00:00Z", "20260101T000000", "", "20260101"])
def test_sign_v4_invalid_date(amz_date):
    with pytest.raises(ValueError, match="amz_date"):
        sigv4.sign_v4("GET", "https://h/b", {"host": "h", "x-amz-date": amz_date}, sigv4.EMPTY_SHA256,
                      access_key_id="a", secret_access_key="s", region="auto", service="s3", amz_date=amz_date)


@pytest.mark.parametrize("headers", [{"host": "h"}, {"host": "h", "x-amz-date": "20260101T000001Z"}])
def test_sign_v4_requires_matching_date(headers):
    with pytest.raises(ValueError, match="x-amz-date"):
        sigv4.sign_v4("GET", "https://h/b", headers, sigv4.EMPTY_SHA256, access_key_id="a",
                      secret_access_key="s", region="auto", service="s3", amz_date="20260101T000000Z")


def test_sign_v4_requires_host():
    with pytest.raises(ValueError, match="host"):
        sigv4.sign_v4("GET", "https://h/b", {"x-amz-date": "20260101T000000Z"}, sigv4.EMPTY_SHA256,
                      access_key_id="a", secret_access_key="s", region="auto", service="s3",
                      amz_date="20260101T000000Z")


@pytest.mark.parametrize("expires_in", [0, -1, 604801, True, 1.5, "60"])
def test_presign_invalid_expiry(expires_in):
    with pytest.raises(ValueError, match="expires_in"):
        sigv4.presign_v4("GET", "https://h/b/k", access_key_id="a", secret_access_key="s", region="auto",
                         service="s3", amz_date="20260101T000000Z", expires_in=expires_in)


# ---------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------

VALID_SETTINGS = {
    "R2_ACCESS_KEY_ID": "AKIDENV",
    "R2_SECRET_ACCESS_KEY": "env-secret-value-1234",
    "R2_ENDPOINT_URL": "https://acct.r2.cloudflarestorage.com/",
    "R2_BUCKET_NAME": "figures",
}


def test_from_env_missing_all():
    with pytest.raises(ValueError) as raised:
        R2Config.from_env()

    message = str(raised.value)
    for name in r2.REQUIRED_VARIABLES:
        assert name in message
    assert ".env.example" in message


def test_from_env_missing_some(monkeypatch):
    monkeypatch.setenv("R2_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("R2_ENDPOINT_URL", "https://acct.r2.cloudflarestorage.com")
    monkeypatch.setenv("R2_BUCKET_NAME", "   ")

    with pytest.raises(ValueError) as raised:
        R2Config.from_env()

    message = str(raised.value)
    assert "R2_SECRET_ACCESS_KEY" in message
    assert "R2_BUCKET_NAME" in message
    assert "R2_ACCESS_KEY_ID" not in message
    assert "R2_ENDPOINT_URL" not in message


def test_from_env_values(monkeypatch):
    for name, value in VALID_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("R2_BASE_URL", "https://pub.example.com")

    config = R2Config.from_env()

    assert config.access_key_id == "AKIDENV"
    assert config.secret_access_key == "env-secret-value-1234"
    assert config.endpoint_url == "https://acct.r2.cloudflarestorage.com"
    assert config.bucket_name == "figures"
    assert config.base_url == "https://pub.example.com"
    assert config.region == "auto"


def test_from_env_dotenv_file(monkeypatch, tmp_path):
    dotenv = tmp_path / "custom.env"
    dotenv.write_text("".join(f"{name}={value}\n" for name, value in VALID_SETTINGS.items()))
    monkeypatch.setenv("SEEWHY_DOTENV_PATH", str(dotenv))
    monkeypatch.setenv("R2_BUCKET_NAME", "from-environment")

    config = R2Config.from_env()

    assert config.access_key_id == "AKIDENV"
    assert config.bucket_name == "from-environment"
    assert config.base_url is None


def test_from_env_dotenv_disabled(monkeypatch, tmp_path):
    dotenv = tmp_path / "custom.env"
    dotenv.write_text("".join(f"{name}={value}\n" for name, value in VALID_SETTINGS.items()))
    monkeypatch.setenv("SEEWHY_DOTENV_PATH", "")

    with pytest.raises(ValueError, match="R2_ACCESS_KEY_ID"):
        R2Config.from_env()


def test_dotenv_path_default(monkeypatch):
    monkeypatch.delenv("SEEWHY_DOTENV_PATH")

    assert r2.dotenv_path() == REPO_ROOT / ".env"


@pytest.mark.parametrize(("field", "value"), [
    ("endpoint_url", "acct.r2.cloudflarestorage.com"),
    ("endpoint_url", "ftp://acct.r2.cloudflarestorage.com"),
    ("endpoint_url", "https://acct.r2.cloudflarestorage.com/figures"),
    ("bucket_name", "Figures"),
    ("bucket_name", "ab"),
    ("bucket_name", "bad_name"),
    ("base_url", "pub.example.com"),
    ("access_key_id", ""),
    ("secret_access_key", ""),
])
def test_config_invalid_value(field, value):
    arguments = {"access_key_id": "AKID", "secret_access_key": "secret", "bucket_name": "figures",
                 "endpoint_url": "https://acct.r2.cloudflarestorage.com", field: value}

    with pytest.raises(ValueError):
        R2Config(**arguments)


VALIDATE_COMMAND = "from shared_lib.r2 import _validate_config; _validate_config(); print('Configuration is valid')"


def test_validate_config_command_missing():
    result = subprocess.run([sys.executable, "-c", VALIDATE_COMMAND], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)

    assert result.returncode != 0
    assert "Configuration is valid" not in result.stdout
    for name in r2.REQUIRED_VARIABLES:
        assert name in result.stderr


def test_validate_config_command_valid(monkeypatch):
    for name, value in VALID_SETTINGS.items():
        monkeypatch.setenv(name, value)

    result = subprocess.run([sys.executable, "-c", VALIDATE_COMMAND], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Configuration is valid"


def test_public_url_encoding():
    config = R2Config("AKID", "secret", "https://acct.r2.cloudflarestorage.com", "figures",
                      base_url="https://pub.example.com/")

    url = R2Client(config).public_url("runs/run 1/ü+%'.png")

    assert url == "https://pub.example.com/runs/run%201/%C3%BC%2B%25%27.png"


def test_public_url_none():
    config = R2Config("AKID", "secret", "https://acct.r2.cloudflarestorage.com", "figures")

    assert R2Client(config).public_url("a.png") is None


# ---------------------------------------------------------------------------------------------------
# Client arguments and keys
# ---------------------------------------------------------------------------------------------------

OFFLINE_CONFIG = R2Config("AKID", "offline-secret-9876", "http://127.0.0.1:9", "figures")


@pytest.mark.parametrize("arguments", [
    {"part_size": MIN_PART_SIZE - 1},
    {"part_size": 1 * MiB},
    {"max_workers": 0},
    {"max_retries": -1},
    {"connect_timeout": 0},
    {"multipart_threshold": -1},
])
def test_client_invalid_arguments(arguments):
    with pytest.raises(ValueError):
        R2Client(OFFLINE_CONFIG, **arguments)


def test_client_part_size_minimum_message():
    with pytest.raises(ValueError, match="5 MiB"):
        R2Client(OFFLINE_CONFIG, part_size=4 * MiB)


@pytest.mark.parametrize("key", ["", "a/../b", "./a", "a/.", "..", "x" * 1025])
def test_client_invalid_key(key):
    with pytest.raises(ValueError, match="invalid object key"):
        R2Client(OFFLINE_CONFIG).upload(key, b"data")


def test_part_size_grows_past_max_parts():
    assert r2._part_size_for(r2.MAX_PARTS * 8 * MiB, 8 * MiB) == 8 * MiB
    assert r2._part_size_for(r2.MAX_PARTS * 8 * MiB + 1, 8 * MiB) == 9 * MiB
    assert r2._part_size_for(None, 8 * MiB) == 8 * MiB


def test_client_from_env(monkeypatch):
    for name, value in VALID_SETTINGS.items():
        monkeypatch.setenv(name, value)

    assert R2Client().config.bucket_name == "figures"


# ---------------------------------------------------------------------------------------------------
# Against the SeaweedFS server
# ---------------------------------------------------------------------------------------------------


class CountingSession(requests.Session):
    """A requests session that records every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        return super().send(request, **kwargs)


def _random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def client(r2_env) -> R2Client:
    with R2Client(r2_env) as client:
        yield client


def test_upload_download_bytes(client):
    data = _random_bytes(1000)

    etag = client.upload("bytes.bin", data)

    assert etag == hashlib.md5(data).hexdigest()
    assert client.download("bytes.bin") == data


def test_upload_empty_object(client):
    etag = client.upload("empty", b"")

    assert etag == hashlib.md5(b"").hexdigest()
    assert client.download("empty") == b""
    assert client.head("empty").size == 0


@pytest.mark.parametrize("kind", ["str path", "Path", "file object", "bytearray"])
def test_upload_input_kinds(client, tmp_path, kind):
    data = _random_bytes(5000, seed=1)
    path = tmp_path / "input.bin"
    path.write_bytes(data)

    if kind == "str path":
        client.upload("kinds/x", str(path))
    elif kind == "Path":
        client.upload("kinds/x", path)
    elif kind == "file object":
        with path.open("rb") as stream:
            client.upload("kinds/x", stream)
    else:
        client.upload("kinds/x", bytearray(data))

    assert client.download("kinds/x") == data


def test_upload_file_object_from_position(client):
    stream = io.BytesIO(b"header:payload")
    stream.seek(7)

    client.upload("position", stream)

    assert client.download("position") == b"payload"


def test_upload_text_stream_rejected(client):
    with pytest.raises(TypeError, match="binary"):
        client.upload("text", io.StringIO("text"))


def test_upload_headers_stored(client):
    client.upload("fig.png", b"png", content_type="image/png", cache_control="public, max-age=60")

    response = requests.get(client.presign_get("fig.png"), timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Cache-Control"] == "public, max-age=60"


def test_head_values(client):
    data = b"head me"
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=1)
    client.upload("head/x", data)

    info = client.head("head/x")

    assert isinstance(info, ObjectInfo)
    assert info.key == "head/x"
    assert info.size == len(data)
    assert info.etag == hashlib.md5(data).hexdigest()
    assert info.last_modified.tzinfo is not None
    assert before <= info.last_modified <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)


def test_head_missing(client):
    assert client.head("missing") is None
    assert client.exists("missing") is False


def test_download_missing(client):
    with pytest.raises(R2Error) as raised:
        client.download("missing")

    assert raised.value.status == 404
    assert raised.value.code == "NoSuchKey"
    assert raised.value.key == "missing"


def test_download_to_file(client, tmp_path):
    data = _random_bytes(3 * MiB + 5, seed=2)
    client.upload("to/file.bin", data)
    target = tmp_path / "out.bin"

    returned = client.download_to("to/file.bin", target)

    assert returned == target
    assert target.read_bytes() == data
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.bin"]


def test_download_to_missing(client, tmp_path):
    target = tmp_path / "out.bin"

    with pytest.raises(R2Error) as raised:
        client.download_to("missing", target)

    assert raised.value.status == 404
    assert list(tmp_path.iterdir()) == []


def test_delete_missing_succeeds(client):
    client.delete("never-existed")

    assert client.list() == []


@pytest.mark.parametrize("key", ROUND_TRIP_KEYS + [
    pytest.param(key, marks=pytest.mark.xfail(strict=True, reason="SeaweedFS does not keep slashes of keys exactly"))
    for key in SLASH_KEYS
])
def test_key_round_trip(client, key):
    data = key.encode("utf-8") + b"\x00\xff"

    client.upload(key, data)
    listed = client.list()

    assert [info.key for info in listed] == [key]
    assert listed[0].size == len(data)
    assert client.download(key) == data
    assert client.head(key).size == len(data)

    client.delete(key)

    assert client.head(key) is None
    assert client.list() == []


def test_list_prefix(client):
    for key in ["a/1", "a/2", "ab", "b/1"]:
        client.upload(key, key.encode())

    assert [info.key for info in client.list("a/")] == ["a/1", "a/2"]
    assert [info.key for info in client.list("a")] == ["a/1", "a/2", "ab"]
    assert [info.key for info in client.list()] == ["a/1", "a/2", "ab", "b/1"]
    assert client.list("zzz") == []


def test_list_prefix_special_characters(client):
    keys = ["sp ace+plus/ü 1", "sp ace+plus/ü 2", "sp ace plus/x", "sp%20ace+plus/y"]
    for key in keys:
        client.upload(key, b"x")

    assert [info.key for info in client.list("sp ace+plus/")] == ["sp ace+plus/ü 1", "sp ace+plus/ü 2"]
    assert [info.key for info in client.list("sp%20")] == ["sp%20ace+plus/y"]


def test_list_pagination(r2_env):
    session = CountingSession()
    client = R2Client(r2_env, session=session)
    keys = sorted(f"page/{index:03d} item+{index}" for index in range(23))
    for key in keys:
        client.upload(key, key.encode())
    client.upload("other", b"not in the prefix")
    session.sent.clear()

    listed = client.list("page/", max_keys=5)

    assert [info.key for info in listed] == keys
    assert [info.size for info in listed] == [len(key.encode()) for key in keys]
    assert len(session.sent) == 5
    assert all("continuation-token=" in request.url for request in session.sent[1:])


def test_list_invalid_max_keys(client):
    with pytest.raises(ValueError, match="max_keys"):
        client.list(max_keys=0)


def test_multipart_equal_parts(r2_env):
    session = CountingSession()
    client = R2Client(r2_env, session=session, multipart_threshold=MIN_PART_SIZE, part_size=MIN_PART_SIZE,
                      max_workers=3)
    data = _random_bytes(2 * MIN_PART_SIZE + 12345, seed=3)

    etag = client.upload("multi/part.bin", data, content_type="application/octet-stream")

    part_requests = [request for request in session.sent if "partNumber=" in request.url]
    part_sizes = sorted((int(parse_qs(urlsplit(request.url).query)["partNumber"][0]), len(request.body))
                        for request in part_requests)
    assert part_sizes == [(1, MIN_PART_SIZE), (2, MIN_PART_SIZE), (3, 12345)]
    parts = [data[:MIN_PART_SIZE], data[MIN_PART_SIZE:2 * MIN_PART_SIZE], data[2 * MIN_PART_SIZE:]]
    expected_etag = hashlib.md5(b"".join(hashlib.md5(part).digest() for part in parts)).hexdigest() + "-3"
    assert etag == expected_etag
    assert client.head("multi/part.bin").etag == expected_etag
    assert client.download("multi/part.bin") == data
    assert client.list_multipart_uploads() == []


def test_multipart_threshold_boundary(r2_env):
    session = CountingSession()
    client = R2Client(r2_env, session=session, multipart_threshold=MIN_PART_SIZE, part_size=MIN_PART_SIZE)
    data = _random_bytes(MIN_PART_SIZE + 1, seed=4)

    client.upload("boundary/single", data[:MIN_PART_SIZE])
    single_requests = len(session.sent)
    client.upload("boundary/multi", data)

    assert single_requests == 1
    assert "uploads=" in session.sent[1].url
    assert client.download("boundary/single") == data[:MIN_PART_SIZE]
    assert client.download("boundary/multi") == data


class ShortReadStream(io.RawIOBase):
    """A non-seekable stream that returns at most `chunk` bytes per read, like a pipe."""

    def __init__(self, data: bytes, chunk: int = 64 * 1024, fail_after: int | None = None) -> None:
        self._source = io.BytesIO(data)
        self._chunk = chunk
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._fail_after is not None and self._source.tell() >= self._fail_after:
            raise OSError("simulated read failure")
        data = self._source.read(min(len(buffer), self._chunk))
        buffer[:len(data)] = data
        return len(data)


def test_multipart_file_and_stream(r2_env, tmp_path):
    client = R2Client(r2_env, multipart_threshold=MIN_PART_SIZE, part_size=MIN_PART_SIZE, max_workers=2)
    data = _random_bytes(2 * MIN_PART_SIZE + 1, seed=5)
    path = tmp_path / "big.bin"
    path.write_bytes(data)

    client.upload("multi/from-path", path)
    client.upload("multi/from-stream", ShortReadStream(data))

    assert client.download("multi/from-path") == data
    assert client.download("multi/from-stream") == data
    assert client.head("multi/from-stream").etag.endswith("-3")


def test_multipart_aborted_on_failure(r2_env):
    client = R2Client(r2_env, multipart_threshold=MIN_PART_SIZE, part_size=MIN_PART_SIZE, max_workers=2)
    stream = ShortReadStream(_random_bytes(3 * MIN_PART_SIZE, seed=6), fail_after=2 * MIN_PART_SIZE)

    with pytest.raises(OSError, match="simulated read failure"):
        client.upload("multi/broken", stream)

    assert client.list_multipart_uploads() == []
    assert client.head("multi/broken") is None


def test_presign_get_fetch(client):
    key = "presigned/ü file+1.txt"
    client.upload(key, b"presigned body")

    response = requests.get(client.presign_get(key, expires_in=60), timeout=10)

    assert response.status_code == 200
    assert response.content == b"presigned body"


def test_presign_get_tampered(client):
    client.upload("presigned/x", b"body")
    url = client.presign_get("presigned/x")
    last = url[-1]
    tampered = url[:-1] + ("0" if last != "0" else "1")

    response = requests.get(tampered, timeout=10)

    assert response.status_code == 403


def _presign_at(config: R2Config, key: str, signed_at: dt.datetime) -> str:
    return sigv4.presign_v4("GET", f"{config.endpoint_url}/{config.bucket_name}/{key}",
                            access_key_id=config.access_key_id, secret_access_key=config.secret_access_key,
                            region=config.region, service="s3", amz_date=signed_at.strftime(sigv4.AMZ_DATE_FORMAT),
                            expires_in=60)


def test_presign_get_expired(client, r2_env):
    client.upload("presigned/old", b"body")
    now = dt.datetime.now(dt.timezone.utc)

    fresh = requests.get(_presign_at(r2_env, "presigned/old", now), timeout=10)
    expired = requests.get(_presign_at(r2_env, "presigned/old", now - dt.timedelta(minutes=10)), timeout=10)

    assert fresh.status_code == 200
    assert expired.status_code == 403


def test_unsigned_request_rejected(client, r2_env):
    client.upload("private", b"body")

    response = requests.get(f"{r2_env.endpoint_url}/{r2_env.bucket_name}/private", timeout=10)

    assert response.status_code == 403


def test_wrong_secret_no_retry(r2_env):
    session = CountingSession()
    config = R2Config(r2_env.access_key_id, "not-the-right-secret", r2_env.endpoint_url, r2_env.bucket_name)
    client = R2Client(config, session=session, max_retries=3, backoff=0.01)

    with pytest.raises(R2Error) as raised:
        client.upload("denied", b"body")

    assert raised.value.status == 403
    assert raised.value.code == "SignatureDoesNotMatch"
    assert len(session.sent) == 1


def test_missing_bucket_error(r2_env):
    config = R2Config(r2_env.access_key_id, r2_env.secret_access_key, r2_env.endpoint_url, "no-such-bucket-here")

    with pytest.raises(R2Error) as raised:
        R2Client(config).download("x")

    assert raised.value.status == 404
    assert raised.value.code == "NoSuchBucket"


def test_secret_never_shown(r2_env, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "wrong-secret-that-must-stay-hidden"
    config = R2Config(r2_env.access_key_id, secret, r2_env.endpoint_url, r2_env.bucket_name)
    client = R2Client(config, max_retries=0)

    with pytest.raises(R2Error) as raised:
        client.upload("hidden", b"body")

    rendered = [repr(config), str(config), repr(client), str(client), str(raised.value), repr(raised.value),
             repr(raised.value.args), caplog.text]
    for text in rendered:
        assert secret not in text
    assert r2_env.secret_access_key not in repr(r2_env)


def test_connection_error_retries(caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = CountingSession()
    config = R2Config("AKID", "secret-for-retry-test", f"http://127.0.0.1:{port}", "figures")
    client = R2Client(config, session=session, max_retries=3, backoff=0.001, connect_timeout=2)

    with pytest.raises(R2Error) as raised:
        client.download("x")

    assert raised.value.status is None
    assert raised.value.code is None
    assert "4 attempts" in raised.value.message
    assert len(session.sent) == 4
    assert sum("retry" in record.getMessage() for record in caplog.records) == 3


def test_delete_bucket(r2_env):
    config = dataclasses.replace(r2_env, bucket_name=f"seewhy-extra-{uuid.uuid4().hex[:12]}")
    client = R2Client(config)
    client.create_bucket(config.bucket_name)
    client.upload("keeps-bucket", b"x")

    with pytest.raises(R2Error) as not_empty:
        client.delete_bucket(config.bucket_name)
    client.delete("keeps-bucket")
    client.delete_bucket(config.bucket_name)

    assert not_empty.value.status == 409
    assert not_empty.value.code == "BucketNotEmpty"
    with pytest.raises(R2Error) as missing:
        client.upload("after-delete", b"x")
    assert missing.value.code == "NoSuchBucket"


def test_create_bucket_exists(client, r2_env):
    with pytest.raises(R2Error) as raised:
        client.create_bucket(r2_env.bucket_name)

    assert raised.value.status == 409


# ---------------------------------------------------------------------------------------------------
# Against a capturing HTTP server: what the client sends, and how it retries
# ---------------------------------------------------------------------------------------------------


class CaptureServer:
    """An HTTP server on 127.0.0.1 that records requests and replies from a list of planned responses."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        # Each planned response is (status, body) or (status, body, missing bytes): the last form
        # declares a longer Content-Length than it sends, then closes the connection.
        self.responses: collections.deque[tuple] = collections.deque()
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                capture.requests.append({"method": self.command, "path": self.path,
                                         "headers": {name.lower(): value for name, value in self.headers.items()},
                                         "body": body})
                status, reply, *missing = capture.responses.popleft() if capture.responses else (200, b"")
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply) + sum(missing)))
                self.send_header("ETag", '"0123456789abcdef"')
                self.end_headers()
                self.wfile.write(reply)
                if missing:
                    self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

            def log_message(self, *args) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def capture_server():
    server = CaptureServer()
    yield server
    server.stop()


def _capture_client(server: CaptureServer, **arguments) -> R2Client:
    config = R2Config("AKIDCAPTURE", "capture-secret", server.endpoint_url, "figures", region="weur")
    return R2Client(config, backoff=0.001, **arguments)


def _error_body(code: str) -> bytes:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>try later</Message></Error>".encode()


def test_wire_request_headers(capture_server):
    client = _capture_client(capture_server)
    key = "runs//a b/ü+100%.png"
    body = b"payload bytes"

    client.upload(key, body, content_type="image/png")

    (request,) = capture_server.requests
    headers = request["headers"]
    assert request["method"] == "PUT"
    assert request["path"] == "/figures/runs//a%20b/%C3%BC%2B100%25.png"
    assert request["body"] == body
    assert headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert headers["content-type"] == "image/png"
    assert "/weur/s3/aws4_request," in headers["authorization"]
    assert not [name for name in headers if name.startswith(("x-amz-checksum", "x-amz-acl", "x-amz-decoded"))]
    assert "aws-chunked" not in headers.get("content-encoding", "")
    assert "transfer-encoding" not in headers


def test_wire_signature_consistent(capture_server):
    client = _capture_client(capture_server)

    client.upload("consistent/ key", b"body")

    (request,) = capture_server.requests
    headers = request["headers"]
    signed = {name: headers[name] for name in _signed_header_names(headers["authorization"])}
    expected = sigv4.sign_v4("PUT", capture_server.endpoint_url + request["path"], signed,
                             hashlib.sha256(b"body").hexdigest(), access_key_id="AKIDCAPTURE",
                             secret_access_key="capture-secret", region="weur", service="s3",
                             amz_date=headers["x-amz-date"])
    assert headers["authorization"] == expected
    assert {"host", "x-amz-date", "x-amz-content-sha256"} <= set(signed)


def test_retry_5xx_resigns(capture_server, monkeypatch):
    dates = iter(["20260101T000001Z", "20260101T000002Z", "20260101T000003Z"])
    monkeypatch.setattr(r2, "amz_date_now", lambda: next(dates))
    capture_server.responses.extend([(503, _error_body("SlowDown")), (500, _error_body("InternalError"))])
    client = _capture_client(capture_server, max_retries=3)

    client.upload("retry", b"retried body")

    assert len(capture_server.requests) == 3
    assert [request["headers"]["x-amz-date"] for request in capture_server.requests] == [
        "20260101T000001Z", "20260101T000002Z", "20260101T000003Z"]
    assert len({request["headers"]["authorization"] for request in capture_server.requests}) == 3
    assert all(request["body"] == b"retried body" for request in capture_server.requests)


def test_retry_429_exhausted(capture_server):
    capture_server.responses.extend([(429, _error_body("SlowDown"))] * 3)
    client = _capture_client(capture_server, max_retries=2)

    with pytest.raises(R2Error) as raised:
        client.download("busy")

    assert raised.value.status == 429
    assert raised.value.code == "SlowDown"
    assert raised.value.message.endswith("try later")
    assert len(capture_server.requests) == 3


@pytest.mark.parametrize("status", [400, 403, 404, 409])
def test_no_retry_on_4xx(capture_server, status):
    capture_server.responses.append((status, _error_body("SomeClientError")))
    client = _capture_client(capture_server, max_retries=3)

    with pytest.raises(R2Error) as raised:
        client.upload("client-error", b"body")

    assert raised.value.status == status
    assert raised.value.code == "SomeClientError"
    assert len(capture_server.requests) == 1


def test_retry_truncated_body(capture_server):
    capture_server.responses.extend([(200, b"first half", 50), (200, b"whole body")])
    client = _capture_client(capture_server, max_retries=2)

    assert client.download("cut") == b"whole body"
    assert len(capture_server.requests) == 2


def test_download_to_retries_truncated(capture_server, tmp_path):
    capture_server.responses.extend([(200, b"first half", 50), (200, b"whole body")])
    client = _capture_client(capture_server, max_retries=2)
    target = tmp_path / "out.bin"

    client.download_to("cut", target)

    assert target.read_bytes() == b"whole body"
    assert len(capture_server.requests) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.bin"]


def test_download_to_truncated_exhausted(capture_server, tmp_path):
    capture_server.responses.extend([(200, b"first half", 50), (200, b"again half", 50)])
    client = _capture_client(capture_server, max_retries=1)
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")

    with pytest.raises(R2Error, match="reading the body"):
        client.download_to("cut", target)

    assert target.read_bytes() == b"previous"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.bin"]


def test_multipart_part_failure_aborts(capture_server):
    capture_server.responses.extend([
        (200, b"<InitiateMultipartUploadResult><UploadId>up-2</UploadId></InitiateMultipartUploadResult>"),
        (200, b""),
        (400, _error_body("InvalidPart")),
        (204, b""),
    ])
    client = _capture_client(capture_server, multipart_threshold=MIN_PART_SIZE, part_size=MIN_PART_SIZE,
                             max_workers=1, max_retries=0)

    with pytest.raises(R2Error) as raised:
        client.upload("part-fails", bytes(2 * MIN_PART_SIZE + 1))

    requests_sent = [(request["method"], urlsplit(request["path"]).query) for request in capture_server.requests]
    assert raised.value.code == "InvalidPart"
    assert requests_sent == [
        ("POST", "uploads="),
        ("PUT", "partNumber=1&uploadId=up-2"),
        ("PUT", "partNumber=2&uploadId=up-2"),
        ("DELETE", "uploadId=up-2"),
    ]


def test_complete_error_in_200(capture_server):
    capture_server.responses.extend([
        (200, b"<InitiateMultipartUploadResult><UploadId>up-1</UploadId></InitiateMultipartUploadResult>"),
        (200, b""),
        (200, b""),
        (200, _error_body("InternalError")),
        (204, b""),
    ])
    client = _capture_client(capture_server, multipart_threshold=MIN_PART_SIZE, part_size=MIN_PART_SIZE,
                             max_workers=1, max_retries=0)

    with pytest.raises(R2Error) as raised:
        client.upload("complete", bytes(MIN_PART_SIZE + 1))

    methods = [(request["method"], urlsplit(request["path"]).query) for request in capture_server.requests]
    assert raised.value.code == "InternalError"
    assert methods[-1] == ("DELETE", "uploadId=up-1")


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))
