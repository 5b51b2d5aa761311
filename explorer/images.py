"""Pixel vectors in [0, 1] -> pictures (grids, PNG bytes, data URIs), grey or colour from the image shape: (h, w)
or (1, h, w) grey, (3, h, w) colour (pixel vectors in C, H, W order); and uploads -> pixel vectors."""
from __future__ import annotations

import base64
import io
import math
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from training.errors import UserError

PAD_GREY = 128           # grid lines: mid grey, so neither black background nor white strokes merge with them
MAX_UPLOAD_PIXELS = 40_000_000


class UploadError(UserError, ValueError):
    """An uploaded file that is not an image we can read; the message says so in one line."""


def _dims(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(channels, height, width) of an image shape (h, w) or (c, h, w)."""
    return (1, *shape) if len(shape) == 2 else tuple(shape)  # type: ignore[return-value]


def to_uint8(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(..., D) pixel vectors in [0, 1] -> (n, h, w) uint8 for grey images, (n, h, w, 3) for colour, clipped."""
    c, h, w = _dims(shape)
    flat = np.asarray(images, dtype=np.float32).reshape(-1, c * h * w)
    tiles = (np.clip(flat, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).reshape(-1, c, h, w)
    return tiles[:, 0] if c == 1 else tiles.transpose(0, 2, 3, 1)


def _scaled(tile: np.ndarray, scale: int) -> np.ndarray:
    return tile.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else tile


def image_grid(images: np.ndarray, shape: tuple[int, int], ncols: int | None = None, scale: int = 4,
               pad: int = 1) -> Image.Image:
    """One greyscale picture of many images, each scaled up `scale` times, `pad` grey pixels around each.

    images is (n, D), laid out row by row in ncols columns (default: a near-square
    grid), or (rows, cols, D), which keeps that layout (a traversal grid).
    Size: cols * (w * scale) + (cols + 1) * pad wide, likewise high.
    """
    images = np.asarray(images)
    channels, h, w = _dims(shape)
    if images.ndim == 3:
        rows, cols = images.shape[:2]
    else:
        n = max(1, images.reshape(-1, channels * h * w).shape[0])
        cols = max(1, min(ncols or math.ceil(math.sqrt(n)), n))
        rows = math.ceil(n / cols)
    tiles = to_uint8(images, shape)
    ch, cw = h * scale, w * scale
    size = (rows * ch + (rows + 1) * pad, cols * cw + (cols + 1) * pad) + (() if channels == 1 else (3,))
    canvas = np.full(size, PAD_GREY, np.uint8)
    for idx, tile in enumerate(tiles[:rows * cols]):
        r, c = divmod(idx, cols)
        y, x = pad + r * (ch + pad), pad + c * (cw + pad)
        canvas[y:y + ch, x:x + cw] = _scaled(tile, scale)
    return Image.fromarray(canvas, mode="L" if channels == 1 else "RGB")


def gif_bytes(images: np.ndarray, shape: tuple[int, int], scale: int = 4, frame_ms: int = 150,
              bounce: bool = True) -> bytes:
    """An animated GIF (Pillow) of the images as frames, looping; bounce plays it back and forth."""
    tiles = to_uint8(images, shape)
    if not len(tiles):
        raise ValueError("a GIF needs at least one frame")
    frames = [Image.fromarray(_scaled(t, scale), mode="L" if t.ndim == 2 else "RGB") for t in tiles]
    if bounce and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    """PNG file contents; low compression, since these images are tiny and latency matters more."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def image_data_uri(image: np.ndarray, shape: tuple[int, int], scale: int = 3) -> str:
    """'data:image/png;base64,...' of one image: for hover pictures in plots and inline HTML."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image_grid(
        np.reshape(image, (1, -1)), shape, ncols=1, scale=scale, pad=0))).decode("ascii")


def image_data_uris(images: np.ndarray, shape: tuple[int, int], scale: int = 3) -> list[str]:
    """image_data_uri of every row of images (n, D)."""
    return [image_data_uri(row, shape, scale) for row in np.asarray(images).reshape(-1, shape[0] * shape[1])]


def read_upload(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """An uploaded picture -> (D,) float32 in [0, 1] like the training images (light strokes on dark).

    Transparency is flattened onto white, colour turned to grey, the picture
    resized to `shape` (area averaging), contrast stretched to the full range,
    and inverted when its border is light (a dark digit drawn on paper). Raises
    UploadError for anything that is not a readable image.
    """
    if not data:
        raise UploadError("the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_UPLOAD_PIXELS:
                    raise UploadError(f"the image is {img.width}x{img.height} pixels; "
                                      f"upload one under {MAX_UPLOAD_PIXELS // 1_000_000} megapixels")
                img.load()
                rgba = img.convert("RGBA")
    except UploadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError("the uploaded file is not an image this app can read (use PNG or JPEG)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated or corrupt image data
        raise UploadError(f"the uploaded image is damaged or truncated ({' '.join(str(e).split())})") from None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    grey = Image.alpha_composite(white, rgba).convert("L").resize((shape[1], shape[0]), Image.Resampling.BOX)
    x = np.asarray(grey, dtype=np.float32) / 255.0
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi - lo > 1e-6 else np.zeros_like(x)
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    if np.median(border) > 0.5:
        x = 1.0 - x
    return x.reshape(-1).astype(np.float32)
