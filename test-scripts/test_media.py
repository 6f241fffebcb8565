"""Tests for shared_lib.media: uploads to a local SeaweedFS S3 server, local fallbacks and animation encoding.

Run with `uv run pytest test-scripts/test_media.py` or `uv run python test-scripts/test_media.py`.
The R2 tests use the `s3_server`, `s3_server_factory` and `r2_env` fixtures of conftest.py.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import socket
import sys
import urllib.parse
from pathlib import Path

import imageio.v3 as iio
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import requests  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image, ImageSequence  # noqa: E402

from shared_lib import media  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def output_folder(monkeypatch, tmp_path) -> Path:
    """Isolate each test: a fresh output folder, no R2 variables and no ffmpeg override."""
    folder = tmp_path / "outputs"
    monkeypatch.setenv("SEEWHY_OUTPUT_DIR", str(folder))
    monkeypatch.setenv("SEEWHY_DOTENV_PATH", "")
    for name in list(os.environ):
        if name.startswith("R2_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("SEEWHY_MEDIA_LOCAL_ONLY", raising=False)
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    monkeypatch.setattr(media, "_unreachable_endpoints", {})
    monkeypatch.setattr(media, "_reported_config_errors", set())
    return folder


def _dates_around(call):
    """Run `call` and return its result with the local dates (yy-mm-dd) before and after it."""
    before = dt.date.today().strftime("%y-%m-%d")
    result = call()
    after = dt.date.today().strftime("%y-%m-%d")
    return result, {before, after}


def _files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def _client(config):
    from shared_lib.r2 import R2Client

    return R2Client(config)


def _stored_content_type(config, key: str) -> str:
    """Return the Content-Type header that the server sends for `key`."""
    response = requests.get(_client(config).presign_get(key), timeout=10)
    assert response.status_code == 200, response.text
    return response.headers["Content-Type"]


def _key_from_url(url: str, bucket: str) -> str:
    """Return the object key of a path-style presigned URL `<endpoint>/<bucket>/<key>?...`."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    prefix = f"/{bucket}/"
    assert path.startswith(prefix), url
    return path[len(prefix) :]


def _color_frames(count: int, height: int, width: int) -> np.ndarray:
    """Frames with a red left half and a gray right half whose brightness changes per frame."""
    frames = np.zeros((count, height, width, 3), np.uint8)  # (T, H, W, 3)
    for index in range(count):
        level = 120 + 20 * index
        frames[index, :, : width // 2, 0] = level
        frames[index, :, width // 2 :] = level
    return frames


def _gif_frames(path: Path) -> tuple[list[np.ndarray], list[int], Image.Image]:
    """Decode a GIF with Pillow and return its RGB frames, per-frame durations in ms and the image."""
    image = Image.open(path)
    frames, durations = [], []
    for frame in ImageSequence.Iterator(image):
        frames.append(np.asarray(frame.convert("RGB")))
        durations.append(frame.info["duration"])
    return frames, durations, image


# ---------------------------------------------------------------------------------------------------------
# Local saving


def test_local_without_config(output_folder):
    data = b"\x00\x01 not really a png \xff"

    result, dates = _dates_around(lambda: media.save_media("loss.png", data))

    path = Path(result)
    assert path.is_absolute()
    assert path.parent.parent == output_folder
    assert path.parent.name in dates
    assert path.name == "loss.png"
    assert path.read_bytes() == data
    assert _files_under(output_folder) == [path]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_local_key_dir_subfolder(output_folder):
    result = media.save_media("run-1/heatmap.png", b"abc", key_dir="sweeps/lr")

    assert Path(result) == output_folder / "sweeps" / "lr" / "run-1" / "heatmap.png"
    assert Path(result).read_bytes() == b"abc"


def test_local_overwrites(output_folder):
    media.save_media("a.txt", b"first version", key_dir="k")
    result = media.save_media("a.txt", b"second", key_dir="k")

    assert Path(result).read_bytes() == b"second"
    assert _files_under(output_folder) == [Path(result)]


def test_local_media_inputs(output_folder, tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 10)
    expected = source.read_bytes()

    cases = {
        "str-path.bin": str(source),
        "pathlike.bin": source,
        "bytes.bin": expected,
        "bytearray.bin": bytearray(expected),
        "memoryview.bin": memoryview(expected),
        "file-object.bin": io.BytesIO(expected),
    }
    for filename, value in cases.items():
        result = media.save_media(filename, value, key_dir="inputs")
        assert Path(result).read_bytes() == expected, filename


def test_file_object_from_position(output_folder):
    stream = io.BytesIO(b"header|payload")
    stream.seek(7)

    result = media.save_media("tail.bin", stream)

    assert Path(result).read_bytes() == b"payload"


def test_bad_media_types(output_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        media.save_media("x.png", tmp_path / "missing.png")
    with pytest.raises(TypeError, match="binary mode"):
        media.save_media("x.txt", io.StringIO("text"))
    with pytest.raises(TypeError, match="int"):
        media.save_media("x.bin", 42)

    assert _files_under(output_folder) == []


def test_local_only_env_skips_r2(r2_env, monkeypatch, output_folder):
    monkeypatch.setenv("SEEWHY_MEDIA_LOCAL_ONLY", "1")

    result = media.save_media("local.png", b"kept locally", key_dir="k")

    assert Path(result) == output_folder / "k" / "local.png"
    assert Path(result).read_bytes() == b"kept locally"
    assert list(_client(r2_env).list("")) == []


def test_output_dir_default(monkeypatch):
    monkeypatch.delenv("SEEWHY_OUTPUT_DIR")

    repository = Path(media.__file__).resolve().parent.parent
    assert media.output_dir() == repository / "outputs"


def test_local_write_failure_leaves_nothing(output_folder, monkeypatch):
    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(media.os, "replace", failing_replace)

    with pytest.raises(OSError, match="disk full"):
        media.save_media("x.png", b"data", key_dir="k")
    assert _files_under(output_folder) == []


# ---------------------------------------------------------------------------------------------------------
# Name validation

ESCAPING_NAMES = ["../x.png", "/abs.png", "a/../../b", "a\\b.png", "", "a\x00b.png", "a//b.png", "dir/", "./x.png"]


@pytest.mark.parametrize("filename", ESCAPING_NAMES)
def test_filename_escape_rejected(r2_env, tmp_path, filename):
    with pytest.raises(ValueError, match="filename") as error:
        media.save_media(filename, b"data")

    if filename:
        assert repr(filename) in str(error.value)
    assert _files_under(tmp_path) == []
    assert list(_client(r2_env).list("")) == []


@pytest.mark.parametrize("key_dir", ["../x", "/abs", "a/../..", "a\\b", "", "a\x00"])
def test_key_dir_escape_rejected(r2_env, tmp_path, key_dir):
    with pytest.raises(ValueError, match="key_dir"):
        media.save_media("x.png", b"data", key_dir=key_dir)

    assert _files_under(tmp_path) == []
    assert list(_client(r2_env).list("")) == []


def test_escape_rejected_by_wrappers(tmp_path):
    fig = Figure(figsize=(1, 1))
    frames = np.zeros((1, 4, 4, 3), np.uint8)

    with pytest.raises(ValueError, match="filename"):
        media.save_matplotlib_figure("../fig.png", fig)
    with pytest.raises(ValueError, match="key_dir"):
        media.save_matplotlib_figure("fig.png", fig, key_dir="../up")
    with pytest.raises(ValueError, match="filename"):
        media.save_animation("../movie.gif", frames, fps=10)
    with pytest.raises(ValueError, match="key_dir"):
        media.save_animation("movie.gif", frames, fps=10, key_dir="/abs")
    assert _files_under(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------
# R2 uploads


def test_upload_inputs_round_trip(r2_env, tmp_path, output_folder):
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(50_000))
    expected = source.read_bytes()
    client = _client(r2_env)

    for filename, value in {
        "path.bin": source,
        "str-path.bin": str(source),
        "bytes.bin": expected,
        "file-object.bin": io.BytesIO(expected),
    }.items():
        url = media.save_media(filename, value, key_dir="round-trip")
        assert url.startswith("http://127.0.0.1"), url
        assert client.download(f"seewhy/round-trip/{filename}") == expected, filename
    assert _files_under(output_folder) == []


def test_upload_key_layout(r2_env, monkeypatch):
    client = _client(r2_env)

    url, dates = _dates_around(lambda: media.save_media("run-7/loss.png", b"png"))
    keys = [f"seewhy/{date}/run-7/loss.png" for date in dates]
    assert _key_from_url(url, r2_env.bucket_name) in keys

    media.save_media("loss.png", b"png", key_dir="sweeps/lr")
    assert client.exists("seewhy/sweeps/lr/loss.png")

    monkeypatch.setenv("R2_KEY_PREFIX", "team/alice/")
    media.save_media("loss.png", b"png", key_dir="k")
    assert client.exists("team/alice/k/loss.png")



def test_key_prefix_from_dotenv(r2_env, monkeypatch, tmp_path):
    dotenv_file = tmp_path / "custom.env"
    dotenv_file.write_text("R2_KEY_PREFIX=from-dotenv\n")
    monkeypatch.setenv("SEEWHY_DOTENV_PATH", str(dotenv_file))

    media.save_media("loss.png", b"png", key_dir="k")

    assert _client(r2_env).exists("from-dotenv/k/loss.png")


def test_invalid_key_prefix_falls_back(r2_env, monkeypatch, output_folder, caplog):
    monkeypatch.setenv("R2_KEY_PREFIX", "team/../other")

    with caplog.at_level(logging.WARNING, logger="shared_lib.media"):
        result = media.save_media("loss.png", b"png", key_dir="k")

    assert Path(result) == output_folder / "k" / "loss.png"
    assert Path(result).read_bytes() == b"png"
    assert "R2_KEY_PREFIX" in caplog.text
    assert _client(r2_env).list("") == []


def test_upload_presigned_url_fetch(r2_env):
    data = os.urandom(10_000)

    url = media.save_media("fetch me.png", data, key_dir="k")

    assert _key_from_url(url, r2_env.bucket_name) == "seewhy/k/fetch me.png"
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == data


def test_upload_base_url(r2_env, monkeypatch):
    base_url = "https://media.example.test/figures"
    monkeypatch.setenv("R2_BASE_URL", base_url)

    url = media.save_media("run 1/loss+acc.png", b"png", key_dir="k")

    assert url.startswith(base_url + "/")
    assert url.endswith(urllib.parse.quote("seewhy/k/run 1/loss+acc.png"))
    assert _client(r2_env).download("seewhy/k/run 1/loss+acc.png") == b"png"


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("a.png", "image/png"),
        ("a.svg", "image/svg+xml"),
        ("a.gif", "image/gif"),
        ("a.mp4", "video/mp4"),
        ("a.json", "application/json"),
        ("a.unknownext", "application/octet-stream"),
    ],
)
def test_upload_content_type_guessed(r2_env, filename, content_type):
    media.save_media(filename, b"x", key_dir="types")

    assert _stored_content_type(r2_env, f"seewhy/types/{filename}") == content_type


def test_upload_content_type_explicit(r2_env):
    media.save_media("a.dat", b"x", "text/csv", key_dir="types", cache_control="max-age=60")

    response = requests.get(_client(r2_env).presign_get("seewhy/types/a.dat"), timeout=10)
    assert response.headers["Content-Type"] == "text/csv"
    assert response.headers["Cache-Control"] == "max-age=60"


def test_wrong_secret_falls_back(r2_env, monkeypatch, output_folder, tmp_path, caplog):
    wrong_secret = "wrong-secret-value-123"
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", wrong_secret)
    data = os.urandom(30_000)
    source = tmp_path / "source.bin"
    source.write_bytes(data)

    with caplog.at_level(logging.INFO, logger="shared_lib.media"):
        results = {
            "bytes.bin": media.save_media("bytes.bin", data, key_dir="k"),
            "path.bin": media.save_media("path.bin", source, key_dir="k"),
            "file-object.bin": media.save_media("file-object.bin", io.BytesIO(data), key_dir="k"),
        }

    for filename, result in results.items():
        assert Path(result) == output_folder / "k" / filename
        assert Path(result).read_bytes() == data, filename
    assert list(_client(r2_env).list("")) == []

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "seewhy/k/bytes.bin" in warnings[0]
    assert "403" in warnings[0] or "SignatureDoesNotMatch" in warnings[0] or "AccessDenied" in warnings[0]
    assert wrong_secret not in caplog.text
    assert r2_env.secret_access_key not in caplog.text


def test_wrong_secret_large_file_object(r2_env, monkeypatch, output_folder):
    """A file object above the client's 16 MiB multipart threshold is rejected and kept whole."""
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", "wrong-secret")
    data = os.urandom(20 * 1024 * 1024)

    result = media.save_media("big.bin", io.BufferedReader(io.BytesIO(data)), key_dir="k")

    assert Path(result) == output_folder / "k" / "big.bin"
    assert Path(result).read_bytes() == data


def test_server_stopped_falls_back(s3_server_factory, monkeypatch, output_folder, caplog):
    server = s3_server_factory()
    _use_server(monkeypatch, server, "stopped-bucket")
    client = _client(_media_config())

    url = media.save_media("before.png", b"uploaded", key_dir="k")
    assert url.startswith("http://127.0.0.1")
    assert client.download("seewhy/k/before.png") == b"uploaded"

    server.stop()
    data = os.urandom(20_000)
    with caplog.at_level(logging.INFO, logger="shared_lib.media"):
        result = media.save_media("after.png", io.BytesIO(data), key_dir="k")
        assert "unreachable" in caplog.text
        second = media.save_media("later.png", data, key_dir="k")

    assert Path(result) == output_folder / "k" / "after.png"
    assert Path(result).read_bytes() == data
    assert Path(second).read_bytes() == data
    assert "without trying R2" in caplog.text


def test_unreachable_endpoint_falls_back(monkeypatch, output_folder):
    """A port that is bound but not listening refuses connections, which must not raise."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        monkeypatch.setenv("R2_ACCESS_KEY_ID", "id")
        monkeypatch.setenv("R2_SECRET_ACCESS_KEY", "secret")
        monkeypatch.setenv("R2_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("R2_BUCKET_NAME", "bucket")

        result = media.save_media("x.png", b"data", key_dir="k")

    assert Path(result) == output_folder / "k" / "x.png"
    assert Path(result).read_bytes() == b"data"


def test_partial_config_falls_back(monkeypatch, output_folder, caplog):
    monkeypatch.setenv("R2_ACCESS_KEY_ID", "id-only")

    with caplog.at_level(logging.WARNING, logger="shared_lib.media"):
        result = media.save_media("x.png", b"data", key_dir="k")

    assert Path(result) == output_folder / "k" / "x.png"
    assert "missing or invalid" in caplog.text
    assert "R2_SECRET_ACCESS_KEY" in caplog.text


def test_missing_config_warns_once(output_folder, caplog):
    with caplog.at_level(logging.DEBUG, logger="shared_lib.media"):
        media.save_media("a.png", b"a", key_dir="k")
        media.save_media("b.png", b"b", key_dir="k")

    fallbacks = [record for record in caplog.records if "missing or invalid" in record.getMessage()]
    assert [record.levelno for record in fallbacks] == [logging.WARNING, logging.DEBUG]
    assert (output_folder / "k" / "b.png").read_bytes() == b"b"


def _media_config():
    from shared_lib.r2 import R2Config

    return R2Config.from_env()


def _use_server(monkeypatch, server, bucket: str) -> None:
    """Point the R2_* variables at `server` and create `bucket` there."""
    monkeypatch.setenv("R2_ACCESS_KEY_ID", server.access_key_id)
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", server.secret_access_key)
    monkeypatch.setenv("R2_ENDPOINT_URL", server.endpoint_url)
    monkeypatch.setenv("R2_BUCKET_NAME", bucket)
    with _client(_media_config()) as client:
        client.create_bucket(bucket)


# ---------------------------------------------------------------------------------------------------------
# Matplotlib figures


def test_figure_png_size_and_reuse(output_folder):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [2, 0, 1])

    result = media.save_matplotlib_figure("curves/loss", fig, dpi=40, key_dir="k")

    assert result == str(output_folder / "k" / "curves" / "loss.png")
    data = Path(result).read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert Image.open(io.BytesIO(data)).size == (80, 60)

    # The figure stays open and drawable.
    assert plt.fignum_exists(fig.number)
    ax.plot([0, 2], [0, 2])
    again = media.save_matplotlib_figure("curves/loss-2.png", fig, dpi=20, key_dir="k")
    assert Image.open(again).size == (40, 30)
    plt.close(fig)


def test_figure_extension_handling(output_folder):
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])

    svg = media.save_matplotlib_figure("plot", fig, format="svg", key_dir="k")
    jpeg = media.save_matplotlib_figure("photo.jpg", fig, format="jpeg", dpi=20, key_dir="k")
    versioned = media.save_matplotlib_figure("loss.v2", fig, dpi=20, key_dir="k")

    assert svg.endswith("plot.svg")
    assert b"<svg" in Path(svg).read_bytes()
    assert jpeg.endswith("photo.jpg")
    assert Path(jpeg).read_bytes().startswith(b"\xff\xd8")
    assert versioned.endswith("loss.v2.png")


def test_figure_upload(r2_env):
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().imshow(np.arange(16).reshape(4, 4))

    media.save_matplotlib_figure("fig.png", fig, dpi=30, key_dir="k")

    data = _client(r2_env).download("seewhy/k/fig.png")
    assert Image.open(io.BytesIO(data)).size == (30, 30)
    assert _stored_content_type(r2_env, "seewhy/k/fig.png") == "image/png"


# ---------------------------------------------------------------------------------------------------------
# Animations


def test_animation_mp4_odd_size_padded(output_folder):
    frames = _color_frames(count=6, height=17, width=23)  # (6, 17, 23, 3), both sides odd

    result = media.save_animation("clusters.mp4", frames, fps=12, key_dir="k")

    assert result == str(output_folder / "k" / "clusters.mp4")
    decoded = iio.imread(result, index=None)  # (T, H, W, 3)
    assert decoded.shape == (6, 18, 24, 3)
    assert iio.immeta(result)["fps"] == pytest.approx(12.0)

    # Away from the red/gray edge and the chroma blocks it touches, the colors survive unscaled.
    for index in range(6):
        level = 120 + 20 * index
        left = decoded[index, 2:14, 1:8].astype(int)
        right = decoded[index, 2:14, 16:22].astype(int)
        assert np.abs(left - [level, 0, 0]).max() <= 12, index
        assert np.abs(right - level).max() <= 12, index
    # The padding row and column repeat their neighbours, so no dark border shows.
    luma = decoded.astype(float) @ [0.299, 0.587, 0.114]  # (T, H, W)
    assert np.abs(luma[:, 17, 14:22] - luma[:, 16, 14:22]).max() <= 12
    assert np.abs(luma[:, :17, 23] - luma[:, :17, 22]).max() <= 12


def test_animation_mp4_odd_size_not_rescaled(output_folder):
    frames = np.zeros((3, 15, 21, 3), np.uint8)  # (T, H, W, 3), both sides odd
    frames[:, :, 5] = 255  # a one-pixel white column
    frames[:, 9, :] = 255  # and a one-pixel white row

    result = media.save_animation("lines.mp4", frames, fps=5, key_dir="k")

    luma = iio.imread(result, index=None).astype(float) @ [0.299, 0.587, 0.114]  # (T, 16, 22)
    assert luma.shape == (3, 16, 22)
    # Luma keeps full resolution in yuv420p, so the lines stay one pixel wide at their columns and rows.
    assert (luma[:, 2, :].argmax(axis=-1) == 5).all()
    assert (luma[:, :, 15].argmax(axis=-1) == 9).all()
    assert luma[:, 2, 7].max() <= 40
    assert luma[:, 11, 15].max() <= 40


def test_animation_mp4_even_size_kept(output_folder):
    frames = _color_frames(count=3, height=16, width=32)

    result = media.save_animation("even.mp4", frames, fps=25, key_dir="k")

    decoded = iio.imread(result, index=None)
    assert decoded.shape == (3, 16, 32, 3)
    assert iio.immeta(result)["fps"] == pytest.approx(25.0)


def test_animation_gif_frames_and_delay(output_folder):
    frames = _color_frames(count=5, height=9, width=13)
    frames[3] = frames[2]  # a repeated frame must stay a frame of its own

    result = media.save_animation("clusters.gif", frames, fps=10, key_dir="k")

    assert result == str(output_folder / "k" / "clusters.gif")
    decoded, durations, image = _gif_frames(Path(result))
    assert len(decoded) == 5
    assert durations == [100] * 5
    assert image.info["loop"] == 0
    assert image.size == (13, 9)
    for index in range(5):
        np.testing.assert_array_equal(decoded[index], frames[index])


@pytest.mark.parametrize(("fps", "duration_ms"), [(25, 40), (4, 250), (0.5, 2000), (30, 30), (100, 20)])
def test_animation_gif_delay_per_fps(output_folder, fps, duration_ms):
    result = media.save_animation("delay.gif", _color_frames(2, 4, 4), fps=fps, key_dir="k")

    _, durations, _ = _gif_frames(Path(result))
    assert durations == [duration_ms] * 2


def test_animation_gif_many_colors(output_folder):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 40, 50, 3), dtype=np.uint8)

    result = media.save_animation("noise.gif", frames, fps=5, key_dir="k")

    decoded, _, _ = _gif_frames(Path(result))
    assert len(decoded) == 3
    assert decoded[0].shape == (40, 50, 3)
    # 256 colors per frame cannot hold random RGB exactly, but the mean error stays small.
    assert np.abs(decoded[1].astype(int) - frames[1]).mean() < 24


def test_animation_generator_consumed_once(output_folder):
    yielded = []

    def generate():
        for index in range(7):
            frame = np.full((10, 12, 3), 30 * index, np.uint8)
            yielded.append(index)
            yield frame

    frames = generate()
    result = media.save_animation("stream.mp4", frames, fps=7, key_dir="k")

    assert yielded == list(range(7))
    assert next(frames, None) is None
    decoded = iio.imread(result, index=None)
    assert decoded.shape == (7, 10, 12, 3)
    assert np.abs(decoded[:, 2:8, 2:10].astype(int).mean(axis=(1, 2, 3)) - 30 * np.arange(7)).max() < 4


def test_animation_generator_gif(output_folder):
    frames = (np.full((6, 6, 3), 40 * index, np.uint8) for index in range(4))

    result = media.save_animation("stream.gif", frames, fps=20, key_dir="k")

    decoded, durations, _ = _gif_frames(Path(result))
    assert [int(frame[0, 0, 0]) for frame in decoded] == [0, 40, 80, 120]
    assert durations == [50] * 4


def test_animation_matplotlib_figures(output_folder):
    figures = []
    for index in range(3):
        fig = Figure(figsize=(1.2, 0.8), dpi=50)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        ax.imshow(np.full((2, 2, 3), 80 * index, np.uint8), aspect="auto")
        figures.append(fig)
    pyplot_fig, pyplot_ax = plt.subplots(figsize=(1.2, 0.8), dpi=50)
    pyplot_ax.plot([0, 1])
    canvas_before = pyplot_fig.canvas

    gif = media.save_animation("figures.gif", figures, fps=10, key_dir="k")
    mp4 = media.save_animation("figures.mp4", [*figures, pyplot_fig], fps=10, key_dir="k")

    decoded, _, _ = _gif_frames(Path(gif))
    assert len(decoded) == 3
    assert decoded[0].shape == (40, 60, 3)
    assert [int(frame[20, 30, 0]) for frame in decoded] == [0, 80, 160]
    assert iio.imread(mp4, index=None).shape == (4, 40, 60, 3)
    assert pyplot_fig.canvas is canvas_before
    assert plt.fignum_exists(pyplot_fig.number)
    plt.close(pyplot_fig)


def test_animation_mp4_without_ffmpeg(output_folder, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-such-ffmpeg"))
    assert media.find_ffmpeg() is None
    frames = _color_frames(count=4, height=8, width=8)

    with caplog.at_level(logging.WARNING, logger="shared_lib.media"):
        result = media.save_animation("clusters.mp4", frames, fps=10, key_dir="k")

    assert result == str(output_folder / "k" / "clusters.gif")
    decoded, durations, _ = _gif_frames(Path(result))
    assert len(decoded) == 4
    assert durations == [100] * 4
    assert "GIF" in caplog.text


def test_animation_upload(r2_env):
    frames = _color_frames(count=4, height=12, width=16)

    url = media.save_animation("clusters.mp4", frames, fps=8, key_dir="k")

    assert _key_from_url(url, r2_env.bucket_name) == "seewhy/k/clusters.mp4"
    data = _client(r2_env).download("seewhy/k/clusters.mp4")
    assert iio.imread(data, index=None, extension=".mp4").shape == (4, 12, 16, 3)
    assert _stored_content_type(r2_env, "seewhy/k/clusters.mp4") == "video/mp4"


@pytest.mark.parametrize("filename", ["broken.mp4", "broken.gif"])
def test_animation_generator_error(output_folder, tmp_path, filename):
    def generate():
        yield np.zeros((4, 4, 3), np.uint8)
        yield np.zeros((4, 4, 3), np.uint8)
        raise RuntimeError("simulation diverged")

    with pytest.raises(RuntimeError, match="simulation diverged"):
        media.save_animation(filename, generate(), fps=10)
    assert _files_under(tmp_path) == []


BAD_ANIMATIONS = [
    ("a.mp4", np.zeros((2, 4, 4, 3), np.float32), 10, "float32"),
    ("a.mp4", np.zeros((2, 4, 4, 4), np.uint8), 10, r"\(2, 4, 4, 4\)"),
    ("a.mp4", np.zeros((4, 4, 3), np.uint8), 10, r"\(4, 4, 3\)"),
    ("a.gif", np.zeros((0, 4, 4, 3), np.uint8), 10, "empty"),
    ("a.gif", [], 10, "empty"),
    ("a.mp4", iter([]), 10, "empty"),
    ("a.gif", [np.zeros((4, 4), np.uint8)], 10, r"\(4, 4\)"),
    ("a.gif", [np.zeros((4, 4, 3), np.int64)], 10, "int64"),
    ("a.gif", [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)], 10, r"\(4, 5, 3\)"),
    ("a.gif", 42, 10, "int"),
    ("a.mp4", np.zeros((1, 4, 4, 3), np.uint8), 0, "0"),
    ("a.mp4", np.zeros((1, 4, 4, 3), np.uint8), -5, "-5"),
    ("a.mp4", np.zeros((1, 4, 4, 3), np.uint8), float("nan"), "nan"),
    ("a.mp4", np.zeros((1, 4, 4, 3), np.uint8), True, "True"),
    ("a.mp4", np.zeros((1, 4, 4, 3), np.uint8), "10", "'10'"),
    ("a.avi", np.zeros((1, 4, 4, 3), np.uint8), 10, r"\.avi.*\.mp4, \.gif"),
    ("a", np.zeros((1, 4, 4, 3), np.uint8), 10, "''"),
]


@pytest.mark.parametrize(("filename", "frames", "fps", "message"), BAD_ANIMATIONS)
def test_animation_bad_input(output_folder, tmp_path, filename, frames, fps, message):
    with pytest.raises(ValueError, match=message):
        media.save_animation(filename, frames, fps=fps)

    assert _files_under(tmp_path) == []


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, *sys.argv[1:]]))
