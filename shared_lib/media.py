"""Save figures and animations to the shared R2 bucket, or to the local output folder when R2 fails.

Every save goes through `save_media`. It uploads to the object key `<prefix>/<folder>/<filename>` and
returns the object's URL. When the upload fails for any reason (missing configuration, an error response,
an unreachable server), it writes `<output dir>/<folder>/<filename>` and returns that path instead, so no
file is lost. `<folder>` is today's local date as `yy-mm-dd` unless `key_dir` names another one.

Environment variables (the R2_* ones may also be set in the repository's `.env` file, see shared_lib.r2):
    R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY, R2_ENDPOINT_URL, R2_BUCKET_NAME: the bucket (see shared_lib.r2).
    R2_BASE_URL: public URL of the bucket. When set, the returned URL is `<R2_BASE_URL>/<key>`;
        otherwise it is a presigned GET URL that expires after one hour.
    R2_KEY_PREFIX: start of every object key, default `seewhy`. It may contain slashes (`team/alice`).
    SEEWHY_OUTPUT_DIR: local folder for fallback copies, default the repository's `outputs/` folder.
    SEEWHY_MEDIA_LOCAL_ONLY: `1`, `true`, `yes` or `on` skips R2 and always saves locally.
    IMAGEIO_FFMPEG_EXE: ffmpeg binary for `.mp4` output, default the one bundled with imageio-ffmpeg.

Usage:

    url_or_path = save_matplotlib_figure("run-id/loss.png", fig)
    url_or_path = save_animation("run-id/clusters.mp4", frames, fps=20)  # frames: (T, H, W, 3) uint8
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fractions
import io
import logging
import math
import mimetypes
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "find_ffmpeg",
    "output_dir",
    "save_animation",
    "save_matplotlib_figure",
    "save_media",
]

logger = logging.getLogger(__name__)

DEFAULT_KEY_PREFIX = "seewhy"
ANIMATION_FORMATS = (".mp4", ".gif")

# H.264 settings for `.mp4`. CRF 20 (x264's default is 23) keeps thin lines and small text sharp.
# Presets were measured on a 100-frame 1000x600 matplotlib scatter animation, on two shared CPU cores
# with the ffmpeg 9.0.2 of imageio-ffmpeg 0.8.1. Encoding took 0.22 s with ultrafast (2.4 MB), 0.35 s
# with veryfast (452 kB), and 0.7 s with fast or medium (about 490 kB). Drawing those frames with Agg
# took 1.6 s, so the encoder is not the bottleneck, and plots gain nothing from slower presets.
X264_PRESET = "veryfast"
X264_CRF = 20

# Firefox and WebKit play a GIF frame delay of 10 ms or less as 100 ms (comment in WebKit's
# ImageSource::frameDurationAtIndex), so 2 centiseconds (50 fps) is the shortest delay that plays as written.
_MIN_GIF_DELAY_CS = 2

# Upload settings. A server that accepts no connection costs at most 3 attempts of 5 s plus two
# backoff delays (up to 0.5 s and 1 s) before the file is saved locally. After that, saves skip
# the endpoint for UNREACHABLE_COOLDOWN_S, so a run without network does not wait on every figure.
CONNECT_TIMEOUT_S = 5.0
MAX_RETRIES = 2
UNREACHABLE_COOLDOWN_S = 60.0

# Endpoint URL -> time.monotonic() of the last upload to it that got no response.
_unreachable_endpoints: dict[str, float] = {}

# Configuration errors already logged as warnings. A run without R2 warns once, then logs at DEBUG.
_reported_config_errors: set[str] = set()

_REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
_TRUE_VALUES = ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------------------------------------
# Names, keys and local paths


def _validate_relative_path(name: Any, argument: str) -> str:
    """Raise unless `name` is a relative POSIX path that stays inside its folder, and return it as a string.

    Raises TypeError for non-path types. Raises ValueError for empty names, absolute paths, backslashes,
    control characters (NUL included), and empty, `.` or `..` components. `argument` names the value in
    the message.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"{argument} must be a str or os.PathLike, got {type(name).__name__}: {name!r}")
    text = os.fspath(name)
    if not isinstance(text, str):
        raise TypeError(f"{argument} must be a text path, got {text!r}")

    if not text:
        raise ValueError(f"{argument} must not be empty")
    if any(ord(char) < 32 for char in text):
        raise ValueError(f"{argument} must not contain control characters such as NUL, got {text!r}")
    if "\\" in text:
        raise ValueError(f"{argument} must use '/' as separator and contain no backslash, got {text!r}")
    if text.startswith("/"):
        raise ValueError(f"{argument} must be a relative path, got the absolute path {text!r}")
    if any(part in ("", ".", "..") for part in text.split("/")):
        raise ValueError(f"{argument} must not contain empty, '.' or '..' components, got {text!r}")
    return text


def _today() -> str:
    return dt.date.today().strftime("%y-%m-%d")


def _relative_media_path(filename: str | os.PathLike, key_dir: str | os.PathLike | None) -> str:
    """Return `<key_dir or today's date>/<filename>` after validating both parts."""
    name = _validate_relative_path(filename, "filename")
    folder = _today() if key_dir is None else _validate_relative_path(key_dir, "key_dir")
    return f"{folder}/{name}"


def _key_prefix() -> str:
    """Return R2_KEY_PREFIX from the environment or the `.env` file, without surrounding slashes.

    Blank values count as unset, as in shared_lib.r2. Raises ValueError for a prefix that is not a
    valid relative path.
    """
    from dotenv import dotenv_values

    from shared_lib.r2 import dotenv_path

    prefix = os.environ.get("R2_KEY_PREFIX", "").strip()
    dotenv_file = dotenv_path()
    if not prefix and dotenv_file is not None and dotenv_file.is_file():
        prefix = (dotenv_values(dotenv_file).get("R2_KEY_PREFIX") or "").strip()
    prefix = prefix.strip("/") if prefix else DEFAULT_KEY_PREFIX
    return _validate_relative_path(prefix, "R2_KEY_PREFIX")


def output_dir() -> Path:
    """Return the folder for local copies: `SEEWHY_OUTPUT_DIR`, else the repository's `outputs/` folder."""
    configured = os.environ.get("SEEWHY_OUTPUT_DIR")
    return Path(configured).expanduser() if configured else _REPOSITORY_ROOT / "outputs"


def _local_only() -> bool:
    return os.environ.get("SEEWHY_MEDIA_LOCAL_ONLY", "").strip().lower() in _TRUE_VALUES


# ---------------------------------------------------------------------------------------------------------
# Media input


def _load_media(media: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO) -> bytes | Path:
    """Return a path as an existing file's Path, and anything else as bytes read once.

    A file object is read completely here, so a failed upload cannot leave the local copy without
    the bytes the upload already consumed.
    """
    if isinstance(media, (str, os.PathLike)):
        path = Path(media)
        if not path.is_file():
            raise FileNotFoundError(f"media file not found: {str(path)!r}")
        return path
    if isinstance(media, (bytes, bytearray, memoryview)):
        return bytes(media)
    if hasattr(media, "read"):
        data = media.read()
        if not isinstance(data, (bytes, bytearray)):
            message = f"media file object must be opened in binary mode, its read() returned {type(data).__name__}"
            raise TypeError(message)
        return bytes(data)
    raise TypeError(f"media must be a path, bytes or a binary file object, got {type(media).__name__}")


def _media_size(content: bytes | Path) -> int:
    return content.stat().st_size if isinstance(content, Path) else len(content)


# ---------------------------------------------------------------------------------------------------------
# Saving


def _write_local(relative_path: str, content: bytes | Path) -> Path:
    """Write `content` to `<output dir>/<relative_path>` through a temporary file and `os.replace`.

    A crash mid-write leaves at most a hidden `.*.tmp` file next to the destination, never a partial one.
    """
    destination = output_dir() / relative_path
    destination.parent.mkdir(parents=True, exist_ok=True)

    # Not tempfile.mkstemp, which creates mode 0600 files. "xb" applies the umask like any other new file.
    temp_path = destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temp_path, "xb") as temp_file:
            if isinstance(content, Path):
                with content.open("rb") as source:
                    shutil.copyfileobj(source, temp_file)
            else:
                temp_file.write(content)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_path, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise
    return destination


def _upload(relative_path: str, content: bytes | Path, content_type: str, cache_control: str | None) -> str | None:
    """Upload `content` to `<prefix>/<relative_path>` and return its URL.

    Logs a warning and returns None when anything fails, so that the caller saves the file locally.
    """
    # Imported here so that local saving keeps working while the R2 client or its dependencies are broken.
    try:
        import requests

        from shared_lib.r2 import R2Client, R2Config, R2Error
    except ImportError as error:
        logger.warning("Saving %s locally because the R2 client cannot be imported: %s", relative_path, error)
        return None

    try:
        config = R2Config.from_env()
        key = f"{_key_prefix()}/{relative_path}"
    except ValueError as error:
        level = logging.DEBUG if str(error) in _reported_config_errors else logging.WARNING
        _reported_config_errors.add(str(error))
        logger.log(level, "Saving %s locally because the R2 configuration is missing or invalid: %s", relative_path, error)
        return None

    endpoint = config.endpoint_url
    failed_at = _unreachable_endpoints.get(endpoint)
    if failed_at is not None and time.monotonic() - failed_at < UNREACHABLE_COOLDOWN_S:
        logger.info("Saving %s locally without trying R2, because %s did not respond %.0f s ago",
                    key, endpoint, time.monotonic() - failed_at)
        return None

    try:
        with R2Client(config, connect_timeout=CONNECT_TIMEOUT_S, max_retries=MAX_RETRIES) as client:
            client.upload(key, content, content_type=content_type, cache_control=cache_control)
            url = client.public_url(key) or client.presign_get(key)
    except (R2Error, requests.RequestException, OSError, ValueError) as error:
        # R2Error has status None when no response arrived, after the client's own retries.
        no_response = isinstance(error, R2Error) and error.status is None
        if no_response or isinstance(error, (requests.ConnectionError, requests.Timeout)):
            _unreachable_endpoints[endpoint] = time.monotonic()
            logger.warning(
                "Saving %s locally because %s is unreachable (%s). Saves in the next %.0f s skip R2.",
                key, endpoint, error, UNREACHABLE_COOLDOWN_S,
            )
        else:
            logger.warning("Saving %s locally because the upload to bucket %s failed: %s",
                           key, config.bucket_name, error)
        return None

    _unreachable_endpoints.pop(endpoint, None)
    logger.info("Uploaded %s (%d bytes, %s) to bucket %s", key, _media_size(content), content_type,
                config.bucket_name)
    return url


def save_media(
    filename: str | os.PathLike,
    media: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO,
    content_type: str | None = None,
    *,
    key_dir: str | os.PathLike | None = None,
    cache_control: str | None = None,
) -> str:
    """Upload `media` to R2 and return its URL, or save it locally and return the local path.

    Args:
        filename: relative POSIX path such as `loss.png` or `run-id/heatmap.png`. It must not leave
            its folder: `..` components, absolute paths, backslashes, control characters and empty
            names raise ValueError.
        media: path of an existing file, bytes, or a binary file object (read completely, once).
        content_type: MIME type sent to R2, default guessed from `filename`.
        key_dir: folder between the prefix and `filename`, default today's local date as `yy-mm-dd`.
            Validated like `filename`.
        cache_control: Cache-Control header stored with the object.

    Returns:
        The public URL `<R2_BASE_URL>/<key>` when R2_BASE_URL is set, else a presigned GET URL valid for
        one hour. After a failed upload, or when SEEWHY_MEDIA_LOCAL_ONLY is set, the absolute path of
        `<output dir>/<key_dir or date>/<filename>`.
    """
    relative_path = _relative_media_path(filename, key_dir)
    content = _load_media(media)
    if content_type is None:
        content_type = mimetypes.guess_type(relative_path)[0] or "application/octet-stream"

    if not _local_only():
        url = _upload(relative_path, content, content_type, cache_control)
        if url is not None:
            return url

    path = _write_local(relative_path, content)
    logger.info("Saved %s (%d bytes) to %s", filename, _media_size(content), path)
    return str(path)


def save_matplotlib_figure(
    filename: str | os.PathLike,
    fig: Any,
    format: str = "png",
    dpi: float = 300,
    **save_media_kwargs: Any,
) -> str:
    """Render `fig` with `fig.savefig` in `format` and save it with `save_media`.

    `.<format>` is appended to `filename` unless its extension already names that format. The figure
    stays open with its own canvas, so the caller can keep drawing on it, and closing it is up to the
    caller. Returns what `save_media` returns.
    """
    name = _validate_relative_path(filename, "filename")
    if not _has_format_extension(name, format):
        name = f"{name}.{format}"
    _relative_media_path(name, save_media_kwargs.get("key_dir"))

    buffer = io.BytesIO()
    fig.savefig(buffer, format=format, dpi=dpi)
    return save_media(name, buffer.getvalue(), **save_media_kwargs)


def _has_format_extension(name: str, format: str) -> bool:
    suffix = os.path.splitext(name)[1].lower()
    if suffix == f".{format.lower()}":
        return True
    guessed = mimetypes.guess_type(name)[0]
    return guessed is not None and guessed == mimetypes.guess_type(f"x.{format}")[0]


# ---------------------------------------------------------------------------------------------------------
# Animation frames


def _figure_to_frame(fig: Any) -> np.ndarray:
    """Render a matplotlib figure through the Agg canvas and return its pixels, (H, W, 3) uint8."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    original_canvas = fig.canvas
    canvas = original_canvas if isinstance(original_canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    try:
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4)
        return np.ascontiguousarray(rgba[..., :3])
    finally:
        if canvas is not original_canvas:
            fig.set_canvas(original_canvas)


def _is_figure(item: Any) -> bool:
    # A figure exists only if matplotlib.figure was imported, so an import here is never needed.
    figure_module = sys.modules.get("matplotlib.figure")
    return figure_module is not None and isinstance(item, figure_module.Figure)


def _validate_frame(frame: Any, index: int) -> np.ndarray:
    if _is_figure(frame):
        return _figure_to_frame(frame)
    array = np.asarray(frame)
    if array.dtype != np.uint8:
        raise ValueError(f"frame {index} has dtype {array.dtype}, expected uint8 RGB values in [0, 255]")
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"frame {index} has shape {array.shape}, expected (H, W, 3) RGB")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"frame {index} has shape {array.shape}, expected H and W of at least 1")
    return array


def _iter_frames(frames: Any) -> Iterator[np.ndarray]:
    """Validate the container `frames` now and return an iterator over its validated frames."""
    if isinstance(frames, np.ndarray) or (hasattr(frames, "shape") and hasattr(frames, "dtype")):
        array = np.asarray(frames)
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"frames array has shape {array.shape}, expected (T, H, W, 3) RGB")
        if array.dtype != np.uint8:
            raise ValueError(f"frames array has dtype {array.dtype}, expected uint8 RGB values in [0, 255]")
        frames = array
    elif not isinstance(frames, Iterable) or isinstance(frames, (str, bytes)):
        raise ValueError(
            f"frames must be a (T, H, W, 3) uint8 array or an iterable of (H, W, 3) uint8 arrays or "
            f"matplotlib figures, got {type(frames).__name__}"
        )
    return _validated_frames(frames)


def _validated_frames(frames: Iterable[Any]) -> Iterator[np.ndarray]:
    """Yield (H, W, 3) uint8 frames of one size, pulling each item from `frames` only when needed."""
    first_shape = None
    for index, item in enumerate(frames):
        frame = _validate_frame(item, index)
        if first_shape is None:
            first_shape = frame.shape
        elif frame.shape != first_shape:
            raise ValueError(f"frame {index} has shape {frame.shape}, but frame 0 has shape {first_shape}")
        yield frame


def _validate_fps(fps: Any) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    return float(fps)


# ---------------------------------------------------------------------------------------------------------
# Encoders


def find_ffmpeg() -> str | None:
    """Return the path of a usable ffmpeg binary, or None when there is none.

    Uses `imageio_ffmpeg.get_ffmpeg_exe()`, which honours IMAGEIO_FFMPEG_EXE before its bundled binary.
    """
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as error:
        logger.warning("ffmpeg not found: %s", error)
        return None

    resolved = shutil.which(exe)
    if resolved is None:
        logger.warning("ffmpeg binary %r does not exist or is not executable", exe)
    return resolved


def _encode_mp4(path: Path, frames: Iterator[np.ndarray], fps: float, ffmpeg: str) -> int:
    """Stream `frames` into an ffmpeg H.264 encoder writing `path`, and return the number of frames.

    yuv420p needs even dimensions, so ffmpeg pads an odd width or height with one column or row at
    the right or bottom that repeats its neighbour, which leaves no visible border. The frames are
    never rescaled.
    """
    first = next(frames, None)
    if first is None:
        raise ValueError("frames is empty, expected at least one frame")
    height, width = first.shape[:2]
    padded_width, padded_height = width + width % 2, height + height % 2
    frame_rate = fractions.Fraction(fps).limit_denominator(100_000)

    # fmt: off
    command = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(frame_rate),
        "-i", "pipe:0",
        "-vf", (
            f"pad={padded_width}:{padded_height}:0:0,"
            f"fillborders=right={padded_width - width}:bottom={padded_height - height}:mode=smear"
        ),
        "-c:v", "libx264", "-preset", X264_PRESET, "-crf", str(X264_CRF), "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", "-an",
        str(path),
    ]
    # fmt: on
    # stderr goes to a file, because a full stderr pipe would block ffmpeg while this process writes stdin.
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr_file)
        count = 0
        try:
            for frame in _chain_first(first, frames):
                process.stdin.write(np.ascontiguousarray(frame))
                count += 1
            process.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg exited early. Its exit code and stderr below show why.
        except BaseException:
            process.kill()
            process.wait()
            raise
        returncode = process.wait()

        if returncode != 0:
            stderr_file.seek(0)
            message = stderr_file.read().decode(errors="replace").strip()[-2000:]
            raise RuntimeError(f"ffmpeg failed with exit code {returncode} writing {path}: {message}")
    return count


def _chain_first(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _gif_delay_cs(fps: float) -> int:
    delay = round(100 / fps)
    if delay < _MIN_GIF_DELAY_CS:
        logger.warning(
            "fps=%g needs GIF frame delays below %d centiseconds, which browsers play as 10. Writing %g fps instead.",
            fps, _MIN_GIF_DELAY_CS, 100 / _MIN_GIF_DELAY_CS,
        )
        delay = _MIN_GIF_DELAY_CS
    return delay


def _split_gif_image(data: bytes) -> tuple[bytes, bool, bytes]:
    """Return the color table, interlace flag and LZW image data of a one-frame GIF.

    The image data is the LZW minimum code size byte followed by the data sub-blocks.
    """
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError("Pillow did not write a GIF header")
    color_table = b""
    position = 13  # header (6 bytes) + logical screen descriptor (7 bytes)
    screen_flags = data[10]
    if screen_flags & 0x80:
        table_size = 3 * (2 << (screen_flags & 0x07))
        color_table = data[position : position + table_size]
        position += table_size

    while position < len(data):
        block = data[position]
        if block == 0x21:  # extension: introducer, label, then data sub-blocks
            position = _skip_sub_blocks(data, position + 2)
        elif block == 0x2C:  # image descriptor: 0x2C, left, top, width, height (2 bytes each), flags
            image_flags = data[position + 9]
            position += 10
            if image_flags & 0x80:
                table_size = 3 * (2 << (image_flags & 0x07))
                color_table = data[position : position + table_size]
                position += table_size
            start = position
            end = _skip_sub_blocks(data, position + 1)  # +1 skips the LZW minimum code size byte
            if not color_table:
                raise ValueError("Pillow wrote a GIF frame without a color table")
            return color_table, bool(image_flags & 0x40), data[start:end]
        else:
            break
    raise ValueError("Pillow wrote a GIF without an image")


def _skip_sub_blocks(data: bytes, position: int) -> int:
    while data[position] != 0:
        position += data[position] + 1
    return position + 1


def _encode_gif(path: Path, frames: Iterator[np.ndarray], fps: float) -> int:
    """Write `frames` as a looping GIF at `path`, one frame at a time, and return the number of frames.

    Pillow quantizes each frame to its own 256-color palette and encodes it as a one-frame GIF. This
    function copies the palette and pixel data of each into a local color table of the output, so only
    one frame is in memory at a time and every frame is kept, even one equal to the frame before.
    """
    from PIL import Image

    delay = _gif_delay_cs(fps)
    count = 0
    with path.open("wb") as output:
        for frame in frames:
            height, width = frame.shape[:2]
            if count == 0:
                output.write(b"GIF89a")
                output.write(_u16(width) + _u16(height) + b"\x00\x00\x00")  # no global color table
                output.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + _u16(0) + b"\x00")  # loop forever

            quantized = Image.fromarray(frame, "RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
            encoded = io.BytesIO()
            quantized.save(encoded, format="GIF", interlace=False)
            color_table, interlaced, image_data = _split_gif_image(encoded.getvalue())
            table_bits = (len(color_table) // 3).bit_length() - 2  # size is 2 ** (table_bits + 1) entries

            # Graphic control extension: disposal 1 (keep the frame), delay in centiseconds, no transparency.
            output.write(b"\x21\xf9\x04\x04" + _u16(delay) + b"\x00\x00")
            image_flags = 0x80 | (0x40 if interlaced else 0) | table_bits  # local color table, interlace, size
            output.write(b"\x2c" + _u16(0) + _u16(0) + _u16(width) + _u16(height) + bytes([image_flags]))
            output.write(color_table)
            output.write(image_data)
            count += 1

        if count == 0:
            raise ValueError("frames is empty, expected at least one frame")
        output.write(b"\x3b")
    return count


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "little")


def save_animation(filename: str | os.PathLike, frames: Any, fps: float, **save_media_kwargs: Any) -> str:
    """Encode `frames` as an `.mp4` or `.gif` named `filename` and save it with `save_media`.

    Args:
        filename: relative path ending in `.mp4` (H.264, yuv420p) or `.gif` (looping, 256 colors per frame).
        frames: a (T, H, W, 3) uint8 array, or an iterable of (H, W, 3) uint8 arrays or matplotlib figures.
            An iterator is encoded as it yields, so its frames are never all in memory. Figures are
            rendered through the Agg canvas at their own size and dpi.
        fps: frames per second, a positive number. GIF delays are whole centiseconds, so a GIF plays each
            frame for round(100 / fps) centiseconds, at least 2.
        save_media_kwargs: `key_dir`, `cache_control` or `content_type`, passed to `save_media`.

    Without a usable ffmpeg binary an `.mp4` request is written as `.gif` with the same name and a warning.
    Returns what `save_media` returns. Raises ValueError for an unknown extension, a non-positive fps, no
    frames, or frames that are not uint8 RGB arrays of one size.
    """
    name = _validate_relative_path(filename, "filename")
    stem, extension = os.path.splitext(name)
    extension = extension.lower()
    if extension not in ANIMATION_FORMATS:
        allowed = ", ".join(ANIMATION_FORMATS)
        raise ValueError(f"filename {name!r} has extension {extension!r}, expected one of {allowed}")
    fps = _validate_fps(fps)
    _relative_media_path(name, save_media_kwargs.get("key_dir"))

    ffmpeg = find_ffmpeg() if extension == ".mp4" else None
    if extension == ".mp4" and ffmpeg is None:
        logger.warning("Writing %s as a GIF because no usable ffmpeg binary was found", name)
        name, extension = f"{stem}.gif", ".gif"
        save_media_kwargs.pop("content_type", None)  # a type given for the MP4 would mislabel the GIF

    frame_iterator = _iter_frames(frames)
    with tempfile.TemporaryDirectory(prefix="seewhy-animation-") as temp_dir:
        path = Path(temp_dir) / f"animation{extension}"
        if extension == ".mp4":
            count = _encode_mp4(path, frame_iterator, fps, ffmpeg)
        else:
            count = _encode_gif(path, frame_iterator, fps)
        logger.info("Encoded %d frames at %g fps into %s (%d bytes)", count, fps, name, path.stat().st_size)
        return save_media(name, path, **save_media_kwargs)
