"""Procedural and photographic textures for the synthetic scenes.

Textures are RGB float32 in [0, 1], ``TEX`` x ``TEX`` texels: crops of the photographs shipped
inside scikit-image's wheel (``skimage.data``, those that load offline), and procedural ones
(plaster, wood, tiles, wallpaper, fabric, speckle, abstract shapes, cabinet doors), each kind
giving a new variant for every seed (``make_texture``).
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

TEX = 256  # texture side in texels


_PICTURES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "clock", "stereo_motorcycle",
             "hubble_deep_field", "immunohistochemistry", "text", "page", "coins")
_SURFACES = ("brick", "grass", "gravel", "moon")

_WALL = ((0.93, 0.91, 0.86), (0.86, 0.86, 0.83), (0.78, 0.82, 0.86), (0.80, 0.84, 0.76),
         (0.92, 0.82, 0.70), (0.70, 0.72, 0.74), (0.96, 0.96, 0.95), (0.66, 0.58, 0.52))
_WOOD = ((0.55, 0.36, 0.20), (0.72, 0.52, 0.32), (0.42, 0.27, 0.16), (0.82, 0.68, 0.50),
         (0.32, 0.21, 0.13))
_ACCENT = ((0.62, 0.16, 0.13), (0.16, 0.26, 0.46), (0.22, 0.42, 0.30), (0.86, 0.66, 0.22),
           (0.14, 0.14, 0.15), (0.46, 0.46, 0.50), (0.76, 0.46, 0.36), (0.30, 0.50, 0.62),
           (0.92, 0.92, 0.90), (0.50, 0.30, 0.45))
_ANY = _WALL + _WOOD + _ACCENT


@lru_cache(maxsize=None)
def _photos(group: str) -> tuple[np.ndarray, ...]:
    """The scikit-image sample images of a group that load offline, RGB float32 in [0, 1]."""
    from skimage import data

    out = []
    for name in _PICTURES if group == "photo" else _SURFACES:
        try:
            img = getattr(data, name)()
        except Exception:  # noqa: BLE001 - images that need a download (or are absent) are skipped
            continue
        img = np.asarray(img[0] if isinstance(img, tuple) else img)
        img = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0)
        out.append(np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3])
    return tuple(out)


def _noise(rng: np.random.Generator, beta: float = 2.0, aspect: float = 1.0) -> np.ndarray:
    """Tileable fractal noise (TEX x TEX), zero mean, unit std, power spectrum 1/f^beta.

    ``aspect`` > 1 damps variation along x, giving streaks along x (wood grain, brushing)."""
    fy = np.fft.fftfreq(TEX)[:, None]
    fx = np.fft.rfftfreq(TEX)[None, :] * aspect
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    spec = np.fft.rfft2(rng.standard_normal((TEX, TEX))) / f ** (beta / 2)
    spec[0, 0] = 0.0
    n = np.fft.irfft2(spec, s=(TEX, TEX))
    return (n / n.std()).astype(np.float32)


def _colour(rng: np.random.Generator, palette=_ANY) -> np.ndarray:
    """A palette colour (3,) with per-channel and brightness jitter."""
    c = np.asarray(palette[rng.integers(len(palette))], np.float32)
    return np.clip(c * rng.uniform(0.88, 1.12, 3) * rng.uniform(0.85, 1.1), 0.02, 1.0)


def _shade(colour: np.ndarray, n: np.ndarray, amount: float) -> np.ndarray:
    """``colour`` (3,) modulated by noise ``n`` (HxW): HxWx3."""
    return colour * (1.0 + amount * n[..., None])


_CEILING = ((0.97, 0.97, 0.96), (0.95, 0.94, 0.90), (0.90, 0.90, 0.90))


def _plaster(rng, palette=_WALL):
    img = _shade(_colour(rng, palette), _noise(rng, 2.6), rng.uniform(0.02, 0.08))
    img *= 1.0 + rng.uniform(0.01, 0.04) * _noise(rng, 0.3)[..., None]
    if rng.random() < 0.4:  # faint stains and scuffs
        stain = np.clip(_noise(rng, 3.0) - rng.uniform(1.2, 2.0), 0, None)
        img *= 1.0 - rng.uniform(0.05, 0.2) * np.minimum(stain, 1)[..., None]
    return img


def _wood(rng, planks=True):
    base = _colour(rng, _WOOD)
    warp = _noise(rng, 3.0, aspect=rng.uniform(4, 10))
    grain = _noise(rng, 1.4, aspect=rng.uniform(15, 40))  # fine streaks along x
    y = np.arange(TEX, dtype=np.float32)[:, None] / TEX
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * (y * rng.integers(6, 20) + 0.25 * warp))
    t = np.clip(0.55 * rings ** 3 + 0.15 * grain + 0.25, 0, 1)
    img = base * (0.7 + 0.5 * t[..., None])
    n_planks = int(rng.integers(1, 6)) if planks else 1
    if n_planks > 1:  # floorboards: per-plank shift and brightness, dark seams
        edges = np.linspace(0, TEX, n_planks + 1).astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            img[a:b] = np.roll(img[a:b], int(rng.integers(TEX)), axis=1) * rng.uniform(0.85, 1.15)
            img[a:a + 2] *= 0.55
            img[a:b, int(rng.integers(TEX)):][:, :2] *= 0.55
    return img


def _tiles(rng):
    n = 2 * int(rng.integers(1, 5))  # even, so that the pattern tiles
    size = TEX / n
    grout = rng.uniform(1.0, 5.0)
    yy, xx = np.mgrid[0:TEX, 0:TEX].astype(np.float32)
    row = (yy // size).astype(int)
    xs = xx + (row % 2) * size / 2 * (rng.random() < 0.3)  # optional brick bond
    col = (xs // size).astype(int) % n
    c1 = _colour(rng)
    c2 = _colour(rng) if rng.random() < 0.35 else c1  # checkerboard tiling
    tile = np.where(((row + col) % 2 == 0)[..., None], c1, c2)
    tile *= rng.uniform(0.9, 1.1, (n, n))[row, col][..., None]
    tile = tile * (1.0 + 0.04 * _noise(rng, 1.5)[..., None])
    fx, fy = xs % size, yy % size
    in_grout = (np.minimum(fx, size - fx) < grout / 2) | (np.minimum(fy, size - fy) < grout / 2)
    return np.where(in_grout[..., None], _colour(rng, _WALL) * rng.uniform(0.4, 1.0), tile)


def _stripes(rng):
    colours = [_colour(rng) for _ in range(int(rng.integers(2, 4)))]
    widths = rng.uniform(0.3, 1.0, int(rng.integers(4, 17)))
    edges = np.cumsum(widths) / widths.sum() * TEX
    band = np.searchsorted(edges, np.arange(TEX) + 0.5)
    line = np.stack([colours[b % len(colours)] for b in band])  # TEX x 3
    img = np.broadcast_to(line[None], (TEX, TEX, 3)) * (1 + 0.03 * _noise(rng, 1.0))[..., None]
    return img.transpose(1, 0, 2) if rng.random() < 0.3 else img


def _speckle(rng):
    img = np.ascontiguousarray(_shade(_colour(rng), _noise(rng, 2.0), 0.06))
    for _ in range(int(rng.integers(150, 900))):
        x, y, r = (int(v) for v in rng.integers((0, 0, 1), (TEX, TEX, 4)))
        colour = _colour(rng).tolist()
        for dx in (-TEX, 0, TEX):  # wrap dots across the edges so the texture tiles
            for dy in (-TEX, 0, TEX):
                if -r <= x + dx < TEX + r and -r <= y + dy < TEX + r:
                    cv2.circle(img, (x + dx, y + dy), r, colour, -1, cv2.LINE_AA)
    return img


def _blobs(rng):
    img = np.ascontiguousarray(_shade(_colour(rng), _noise(rng, 2.5), 0.08))
    for _ in range(int(rng.integers(5, 40))):
        c, p = _colour(rng).tolist(), rng.integers(0, TEX, 4)
        shape = rng.integers(3)
        if shape == 0:
            axes = tuple(int(a) for a in rng.integers(4, 60, 2))
            cv2.ellipse(img, (int(p[0]), int(p[1])), axes, float(rng.uniform(0, 180)), 0, 360,
                        c, -1, cv2.LINE_AA)
        elif shape == 1:
            cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), c,
                     int(rng.integers(1, 7)), cv2.LINE_AA)
        else:
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), c, -1)
    return cv2.GaussianBlur(img, (0, 0), 0.7)


def _panel(rng):
    """A cabinet door: frame, bevelled inner panel, handle."""
    img = np.ascontiguousarray(_wood(rng, planks=False) if rng.random() < 0.5 else
                               _shade(_colour(rng), _noise(rng, 2.5), 0.04))
    m = int(rng.integers(18, 60))
    light, dark = (1.25, 1.25, 1.25), (0.6, 0.6, 0.6)
    img[m:TEX - m, m:TEX - m] *= rng.uniform(0.9, 1.05)
    img[m:m + 3, m:TEX - m] *= light
    img[m:TEX - m, m:m + 3] *= light
    img[TEX - m - 3:TEX - m, m:TEX - m] *= dark
    img[m:TEX - m, TEX - m - 3:TEX - m] *= dark
    img[:3] *= 0.4
    img[:, :3] *= 0.4
    x = int(rng.integers(8, max(9, m - 12)))
    cv2.rectangle(img, (x, TEX // 2 - 30), (x + 6, TEX // 2 + 30),
                  (_colour(rng, _ACCENT) * 0.5).tolist(), -1, cv2.LINE_AA)
    return img


def _fabric(rng):
    yy, xx = np.mgrid[0:TEX, 0:TEX].astype(np.float32)
    p = TEX / rng.integers(32, 86)
    weave = np.sin(2 * np.pi * xx / p) * np.sin(2 * np.pi * yy / p)
    img = _shade(_colour(rng), weave + 0.8 * _noise(rng, 1.2), rng.uniform(0.06, 0.14))
    if rng.random() < 0.5:  # tartan: two translucent stripe sets
        period = TEX / rng.integers(2, 6)
        for coord in (xx, yy):
            stripe = ((coord % period) < period * rng.uniform(0.15, 0.4))[..., None]
            img = np.where(stripe, 0.5 * img + 0.5 * _colour(rng), img)
    return img


def _photo(rng, group):
    imgs = _photos(group)
    if not imgs:  # scikit-image without its sample images: fall back to a procedural texture
        return _blobs(rng)
    img = imgs[rng.integers(len(imgs))]
    short = min(img.shape[:2])
    side = int(rng.integers(min(96, short), short + 1))
    y0 = int(rng.integers(img.shape[0] - side + 1))
    x0 = int(rng.integers(img.shape[1] - side + 1))
    crop = cv2.resize(img[y0:y0 + side, x0:x0 + side], (TEX, TEX),
                      interpolation=cv2.INTER_AREA if side > TEX else cv2.INTER_CUBIC)
    if np.allclose(crop[..., 0], crop[..., 1]):  # grey photo: tint it
        crop = crop * (0.45 + 0.55 * _colour(rng))
    return crop * rng.uniform(0.88, 1.12, 3)


_KINDS = {"plaster": _plaster, "ceiling": lambda rng: _plaster(rng, _CEILING), "wood": _wood,
          "tiles": _tiles, "stripes": _stripes,
          "speckle": _speckle, "blobs": _blobs, "panel": _panel, "fabric": _fabric,
          "photo": lambda rng: _photo(rng, "photo"), "surface": lambda rng: _photo(rng, "surface")}
TEXTURE_KINDS = tuple(_KINDS)


@lru_cache(maxsize=128)
def make_texture(kind: str, seed: int) -> np.ndarray:
    """Texture ``kind`` (one of ``TEXTURE_KINDS``) variant ``seed``: TEX x TEX x 3 float32 in
    [0, 1], read-only (cached)."""
    rng = np.random.default_rng([seed, TEXTURE_KINDS.index(kind)])
    img = np.clip(_KINDS[kind](rng), 0.0, 1.0).astype(np.float32)
    img.setflags(write=False)
    return img
