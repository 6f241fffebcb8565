"""AWS Signature Version 4, written in the order of the specification's steps.

Each step is one function: canonical URI, canonical query string, canonical headers, canonical
request, string to sign, signing key and signature. `sign_v4` composes them into an `Authorization`
header value, and `presign_v4` into a presigned URL. The request time is an argument, so a given
request always gets the same signature.

Service "s3" encodes the path exactly once and never normalises it, because S3 object keys may
contain `//`, `./` and `../`. Every other service gets the generic rules: the path is normalised,
then encoded a second time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote_to_bytes, urlsplit

__all__ = [
    "EMPTY_SHA256",
    "MAX_PRESIGN_EXPIRES",
    "build_canonical_request",
    "canonical_headers",
    "canonical_query_string",
    "canonical_request",
    "canonical_uri",
    "credential_scope",
    "presign_v4",
    "sign_v4",
    "signature",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_AMZ_DATE_PATTERN = re.compile(r"\d{8}T\d{6}Z")
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# SHA-256 of an empty body, the payload hash of GET, HEAD and DELETE requests.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# Maximum lifetime that SigV4 allows for a presigned URL: 7 days, in seconds.
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600


def uri_encode(value: str | bytes, *, keep_slash: bool = False) -> str:
    """Percent-encode every byte except the unreserved A-Z a-z 0-9 - _ . ~ (and `/` if kept)."""
    return quote(value, safe="/" if keep_slash else "")


def _remove_dot_segments(path: str) -> str:
    """Resolve `.` and `..` segments and collapse repeated slashes, keeping a trailing slash."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)

    normalized = "/" + "/".join(segments)
    if path.endswith(("/", "/.", "/..")) and normalized != "/":
        normalized += "/"
    return normalized


def canonical_uri(path: str, *, service: str) -> str:
    """Return the canonical URI (step 1) of a URL path as sent on the wire, percent-encoded.

    For S3 the path is decoded and each byte encoded exactly once, and it is never normalised,
    because `a//b` and `a/../b` are distinct object keys. Other services get the generic rules:
    dot segments and repeated slashes are removed, then the already-encoded path is encoded again.
    """
    if service == "s3":
        return uri_encode(unquote_to_bytes(path or "/"), keep_slash=True)
    return uri_encode(_remove_dot_segments(path or "/"), keep_slash=True)


def canonical_query_string(query: str) -> str:
    """Return the canonical query string (step 2): names and values encoded once, sorted by name, then value."""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((uri_encode(unquote_to_bytes(name)), uri_encode(unquote_to_bytes(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[str, str]:
    """Return the canonical header block and the signed-header list (step 3) of every header given.

    Names are lowercased, values trimmed with inner runs of spaces collapsed, and repeated names
    joined with commas in the order given.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    merged: dict[str, list[str]] = {}
    for name, value in items:
        merged.setdefault(name.strip().lower(), []).append(" ".join(str(value).split()))

    names = sorted(merged)
    block = "".join(f"{name}:{','.join(merged[name])}\n" for name in names)
    return block, ";".join(names)


def canonical_request(method: str, uri: str, query: str, header_block: str, signed_headers: str,
                      payload_sha256: str) -> str:
    """Join the canonical parts into the canonical request (step 4)."""
    return "\n".join([method.upper(), uri, query, header_block, signed_headers, payload_sha256])


def credential_scope(amz_date: str, region: str, service: str) -> str:
    """Return the credential scope `<yyyymmdd>/<region>/<service>/aws4_request` of a signature."""
    return f"{amz_date[:8]}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, scope: str, request: str) -> str:
    """Return the string to sign (step 5), which carries the SHA-256 of the canonical request."""
    request_hash = hashlib.sha256(request.encode("utf-8")).hexdigest()
    return "\n".join([ALGORITHM, amz_date, scope, request_hash])


def signing_key(secret_access_key: str, amz_date: str, region: str, service: str) -> bytes:
    """Derive the signing key (step 6) by chaining HMAC-SHA256 over date, region and service."""
    key = ("AWS4" + secret_access_key).encode("utf-8")
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def signature(key: bytes, text_to_sign: str) -> str:
    """Return the signature (step 7): the hex HMAC-SHA256 of the string to sign."""
    return hmac.new(key, text_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _check_amz_date(amz_date: str) -> None:
    if not _AMZ_DATE_PATTERN.fullmatch(amz_date):
        raise ValueError(f"invalid amz_date {amz_date!r}: expected the form 20150830T123600Z (UTC)")


def build_canonical_request(method: str, url: str, headers: Mapping[str, str] | Iterable[tuple[str, str]],
                            payload_sha256: str, *, service: str) -> tuple[str, str]:
    """Return the canonical request of a header-signed request and its signed-header list."""
    parts = urlsplit(url)
    header_block, signed_headers = canonical_headers(headers)
    if "host" not in signed_headers.split(";"):
        raise ValueError("the headers to sign must include 'host'")
    request = canonical_request(
        method, canonical_uri(parts.path, service=service), canonical_query_string(parts.query),
        header_block, signed_headers, payload_sha256,
    )
    return request, signed_headers


def sign_v4(method: str, url: str, headers: Mapping[str, str] | Iterable[tuple[str, str]],
            payload_sha256: str, *, access_key_id: str, secret_access_key: str, region: str,
            service: str, amz_date: str) -> str:
    """Return the `Authorization` header value for a request, signing every header given.

    `url` is the URL as sent, with its path and query percent-encoded. `headers` (a mapping, or
    name-value pairs where a name repeats) must include `host` and `x-amz-date`, and
    `payload_sha256` is the hex SHA-256 of the body. `amz_date` is the request time in UTC.
    """
    _check_amz_date(amz_date)
    headers = list(headers.items() if isinstance(headers, Mapping) else headers)
    dates = [value.strip() for name, value in headers if name.strip().lower() == "x-amz-date"]
    if dates != [amz_date]:
        raise ValueError(f"the headers to sign must include one x-amz-date header equal to {amz_date!r}, got {dates}")
    request, signed_headers = build_canonical_request(method, url, headers, payload_sha256, service=service)
    scope = credential_scope(amz_date, region, service)
    key = signing_key(secret_access_key, amz_date, region, service)
    request_signature = signature(key, string_to_sign(amz_date, scope, request))
    return (f"{ALGORITHM} Credential={access_key_id}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={request_signature}")


def presign_v4(method: str, url: str, *, access_key_id: str, secret_access_key: str, region: str,
               service: str, amz_date: str, expires_in: int) -> str:
    """Return `url` with a query-string SigV4 signature valid for `expires_in` seconds from amz_date.

    Only the `host` header is signed and the payload is unsigned, so any client can fetch the URL.
    """
    _check_amz_date(amz_date)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 1 <= expires_in <= MAX_PRESIGN_EXPIRES:
        raise ValueError(f"invalid expires_in {expires_in!r}: expected whole seconds from 1 to {MAX_PRESIGN_EXPIRES}")

    parts = urlsplit(url)
    scope = credential_scope(amz_date, region, service)
    auth_query = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{access_key_id}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_in),
        "X-Amz-SignedHeaders": "host",
    }
    query = "&".join(filter(None, [parts.query, encode_query(auth_query)]))
    request = canonical_request(
        method, canonical_uri(parts.path, service=service), canonical_query_string(query),
        f"host:{parts.netloc.lower()}\n", "host", UNSIGNED_PAYLOAD,
    )
    key = signing_key(secret_access_key, amz_date, region, service)
    request_signature = signature(key, string_to_sign(amz_date, scope, request))
    return parts._replace(query=f"{query}&X-Amz-Signature={request_signature}").geturl()


def encode_query(params: Mapping[str, str]) -> str:
    """Return `name=value` pairs joined by `&`, each name and value percent-encoded once."""
    return "&".join(f"{uri_encode(name)}={uri_encode(value)}" for name, value in params.items())


def amz_date_now() -> str:
    """Return the current UTC time in the SigV4 form, such as 20150830T123600Z."""
    return dt.datetime.now(dt.timezone.utc).strftime(AMZ_DATE_FORMAT)
