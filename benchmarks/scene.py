"""Synthetic test scene for the benchmarks (seeded, any size; 12 MP by default).

A portrait-like layout in linear light with planar depth in metres:

- a textured far wall (12 m) and a textured ground plane receding from the horizon (12 m) to
  the bottom edge (1.2 m; inverse depth linear in the row, as a real plane gives),
- two textured panels at 5 m and 3.5 m,
- a "person" (ellipse head + ellipse torso) at about 2 m with a feathered matte edge,
- a thin bar at 1.1 m crossing the lower left, in front of the subject (it cuts the matte),
- a few hundred point highlights (linear values 10-50) on the background.

The lens is an 85 mm thin lens on a 36 mm sensor focused on the subject, with the f-number
picked so that the largest |CoC| in the frame equals `max_coc` (100 px by default), and a
hexagonal aperture (6 blades).

    python benchmarks/scene.py --size 1008x756 --png /tmp/scene.png   # look at it
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

import synthdof

FULL_SIZE = (4032, 3024)            # 12 MP, width x height
FOCAL_LENGTH_MM = 85.0
SENSOR_WIDTH_MM = 36.0
FOCUS_DISTANCE = 2.0
Z_WALL, Z_GROUND_NEAR, Z_BAR = 12.0, 1.2, 1.1
Z_PANELS = (5.0, 3.5)
CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "cache")


def f_number_for_max_coc(depth, *, target, focal_length_mm=FOCAL_LENGTH_MM,
                         focus_distance=FOCUS_DISTANCE, width=None, sensor_width_mm=SENSOR_WIDTH_MM):
    """The f-number at which the largest |CoC| (fixed-field-of-view thin lens) over `depth`
    equals `target` pixels: |c| = f^2 W / (N s) |1/z_f - 1/z|, solved for N."""
    depth = np.asarray(depth)
    width = depth.shape[1] if width is None else width
    f, s = focal_length_mm / 1000.0, sensor_width_mm / 1000.0
    inv = 1.0 / depth.astype(np.float64)
    spread = max(abs(1.0 / focus_distance - inv.min()), abs(1.0 / focus_distance - inv.max()))
    return float(f * f * width * spread / (s * float(target)))


def _upsample(grid, h, w):
    """Bilinear upsampling of a (gh, gw, C) grid to (h, w, C) (corner-aligned)."""
    gh, gw = grid.shape[:2]
    y = np.linspace(0.0, gh - 1.0, h, dtype=np.float32)
    x = np.linspace(0.0, gw - 1.0, w, dtype=np.float32)
    y0 = np.minimum(y.astype(np.int64), gh - 2)
    x0 = np.minimum(x.astype(np.int64), gw - 2)
    fy = (y - y0)[:, None, None]
    fx = (x - x0)[:, None]
    # columns first on the small grid, then rows on the full width
    cols = grid[:, x0] * (1 - fx) + grid[:, x0 + 1] * fx        # (gh, w, C)
    out = cols[y0] * (1 - fy)
    out += cols[y0 + 1] * fy
    return out


def texture(h, w, rng, *, base, cell, contrast=0.5, checker=None):
    """Colour texture around `base` (RGB, linear): value noise at three scales (cell, cell/4,
    cell/16 px), fine per-pixel grain and optionally a checker of `checker` px squares."""
    amp = np.float32(contrast)
    grids = []
    for s in (cell, max(4.0, cell / 5.0)):
        gh, gw = int(h / s) + 2, int(w / s) + 2
        g = rng.random((gh, gw, 3), dtype=np.float32) * 2 - 1
        grids.append(amp * (0.7 * g + 0.3 * g.mean(2, keepdims=True)))  # mostly luminance
        amp *= np.float32(0.5)
    t = _upsample(grids[0], h, w)
    t += _upsample(grids[1], h, w)
    t += np.float32(1.0)
    t += np.float32(0.05) * rng.standard_normal((h, w, 1), dtype=np.float32)
    if checker:
        yy = (np.arange(h) // checker)[:, None]
        xx = (np.arange(w) // checker)[None, :]
        t *= np.where((yy + xx) % 2 == 0, np.float32(1.0), np.float32(0.55))[:, :, None]
    np.maximum(t, np.float32(0.02), out=t)
    t *= np.asarray(base, np.float32)
    return t


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _ellipse_coverage(h, w, cx, cy, rx, ry, feather):
    """Feathered ellipse: 1 inside, 0 outside, a smooth edge about `feather` px wide."""
    yy, xx = np.ogrid[:h, :w]
    r = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2, dtype=np.float32)
    dist = (r - 1.0) * min(rx, ry)                                    # ~ signed distance in px
    return (1.0 - _smoothstep(-0.5 * feather, 0.5 * feather, dist)).astype(np.float32)


def make_scene(width=FULL_SIZE[0], height=FULL_SIZE[1], *, seed=0, max_coc=100.0, blades=6,
               n_highlights=300):
    """Build the scene. Returns a dict: image (H, W, 3) float32 linear, depth (H, W) float32
    metres, matte (H, W) float32, lens (synthdof.ThinLens), aperture (synthdof.Aperture),
    coc (H, W) float32 signed CoC diameter in px (lens.coc(depth)), meta (dict)."""
    W, H = int(width), int(height)
    k = W / 4032.0                                                    # sizes scale with the frame
    rng = np.random.default_rng(seed)
    f32 = np.float32

    # far wall
    img = texture(H, W, rng, base=(0.30, 0.25, 0.20), cell=160 * k, checker=max(2, int(96 * k)))
    depth = np.full((H, W), Z_WALL, f32)

    # ground plane: inverse depth linear in the row, from the horizon to the bottom edge
    yh = int(0.58 * H)
    g = np.linspace(0.0, 1.0, H - yh, dtype=f32)[:, None]
    inv = 1.0 / Z_WALL + (1.0 / Z_GROUND_NEAR - 1.0 / Z_WALL) * g
    depth[yh:] = 1.0 / inv
    gtex = texture(H - yh, W, rng, base=(0.18, 0.22, 0.12), cell=120 * k)
    # stripes that converge with distance, so the blur gradient shows
    xx = np.arange(W, dtype=f32)[None, :]
    stripes = np.where(np.cos(xx / (W / 40.0) * (1.0 + 3.0 * (1.0 - g)) * np.pi) > 0, f32(1.0), f32(0.6))
    img[yh:] = gtex * stripes[:, :, None]

    # panels at mid distances
    for z, (x0, x1, y0, y1), base in zip(
            Z_PANELS, [(0.05, 0.30, 0.20, 0.62), (0.72, 0.95, 0.30, 0.75)],
            [(0.55, 0.18, 0.10), (0.10, 0.20, 0.45)]):
        sl = np.s_[int(y0 * H):int(y1 * H), int(x0 * W):int(x1 * W)]
        h, w = depth[sl].shape
        img[sl] = texture(h, w, rng, base=base, cell=60 * k, checker=max(2, int(40 * k)))
        depth[sl] = z

    # point highlights on what lies behind the subject (above the ground's near part)
    n = int(n_highlights)
    hx = rng.uniform(0.02, 0.98, n) * W
    hy = rng.uniform(0.03, 0.62, n) * H
    val = rng.uniform(10.0, 50.0, n)
    tint = rng.uniform(0.6, 1.0, (n, 3))
    rad = rng.uniform(0.6, 2.0, n) * max(k, 0.35)
    for x, y, v, c, r in zip(hx, hy, val, tint, rad):
        x0, x1 = int(max(0, x - r - 1)), int(min(W, x + r + 2))
        y0, y1 = int(max(0, y - r - 1)), int(min(H, y + r + 2))
        py, px = np.mgrid[y0:y1, x0:x1]
        cov = np.clip(r + 0.5 - np.hypot(px + 0.5 - x, py + 0.5 - y), 0.0, 1.0)[:, :, None]
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - cov) + cov * (v * c)

    # the subject: head + torso with a feathered edge; depth rounded around 2 m
    feather = max(2.0, 10.0 * k)
    head = _ellipse_coverage(H, W, 0.50 * W, 0.30 * H, 0.085 * W, 0.15 * H, feather)
    torso = _ellipse_coverage(H, W, 0.50 * W, 0.86 * H, 0.21 * W, 0.38 * H, feather)
    matte = np.maximum(head, torso)
    # a bar in front of everything (a railing at 1.1 m across the lower left): y = 0.95 H - 0.45 x
    yy = np.arange(H, dtype=f32)[:, None]
    d_bar = np.abs((yy - 0.95 * H) + 0.45 * xx)
    bar = (_smoothstep(-1.0, 1.0, 18.0 * k - d_bar) * (xx < 0.62 * W)).astype(f32)
    matte *= 1.0 - bar

    rows, cols = np.nonzero(matte.any(1))[0], np.nonzero(matte.any(0))[0]
    sl = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = matte[sl].shape
    skin = texture(h, w, rng, base=(0.60, 0.42, 0.32), cell=50 * k, contrast=0.3)
    cloth = texture(h, w, rng, base=(0.15, 0.30, 0.35), cell=30 * k, checker=max(2, int(24 * k)))
    subj = np.where((yy[sl[0]] < 0.45 * H)[:, :, None], skin, cloth)
    bulge = np.sqrt(np.clip(1.0 - ((xx[:, sl[1]] - 0.5 * W) / (0.21 * W)) ** 2, 0.0, 1.0))
    z_subj = np.broadcast_to(FOCUS_DISTANCE + 0.08 - 0.10 * bulge, (h, w)).astype(f32)  # nearer centre
    a = matte[sl][:, :, None]
    img[sl] = a * subj + (1 - a) * img[sl]
    depth[sl] = np.where(matte[sl] >= 0.5, z_subj, depth[sl])          # depth is not anti-aliased

    rows, cols = np.nonzero(bar.any(1))[0], np.nonzero(bar.any(0))[0]
    sl = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = bar[sl].shape
    b = bar[sl][:, :, None]
    img[sl] = b * texture(h, w, rng, base=(0.35, 0.33, 0.30), cell=20 * k, contrast=0.3) + (1 - b) * img[sl]
    depth[sl] = np.where(bar[sl] >= 0.5, f32(Z_BAR), depth[sl])

    img = np.ascontiguousarray(img, dtype=np.float32)
    depth = np.ascontiguousarray(depth, dtype=np.float32)
    matte = np.ascontiguousarray(np.clip(matte, 0.0, 1.0), dtype=np.float32)
    N = f_number_for_max_coc(depth, target=max_coc, width=W)
    lens = synthdof.ThinLens(focal_length_mm=FOCAL_LENGTH_MM, f_number=N,
                             focus_distance=FOCUS_DISTANCE, sensor_width_mm=SENSOR_WIDTH_MM)
    aperture = synthdof.Aperture(blades=blades)
    coc = lens.coc(depth, W)
    meta = dict(width=W, height=H, seed=seed, max_coc=float(max_coc), blades=blades,
                n_highlights=n, focal_length_mm=FOCAL_LENGTH_MM, f_number=N,
                focus_distance_m=FOCUS_DISTANCE, sensor_width_mm=SENSOR_WIDTH_MM,
                coc_min=float(coc.min()), coc_max=float(coc.max()))
    return dict(image=img, depth=depth, matte=matte, lens=lens, aperture=aperture, coc=coc, meta=meta)


def area_down(x, k):
    """Mean over k x k cells (the last rows and columns that do not fill a cell are dropped)."""
    h, w = x.shape[0] // k, x.shape[1] // k
    return x[:h * k, :w * k].reshape(h, k, w, k).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def bilinear_up(small, shape):
    """Bilinear resize to `shape` with pixel centres aligned and edges clamped (as resizers do)."""
    h, w = small.shape
    H, W = shape
    ys = np.clip((np.arange(H) + 0.5) * (h / H) - 0.5, 0, h - 1)
    xs = np.clip((np.arange(W) + 0.5) * (w / W) - 0.5, 0, w - 1)
    y0, x0 = ys.astype(np.intp), xs.astype(np.intp)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy = (ys - y0).astype(np.float32)[:, None]
    fx = (xs - x0).astype(np.float32)[None, :]
    rows0, rows1 = small[y0], small[y1]
    top = rows0[:, x0] * (1 - fx) + rows0[:, x1] * fx
    bottom = rows1[:, x0] * (1 - fx) + rows1[:, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def gaussian(x, sigma):
    """Separable Gaussian, radius round(3 sigma), edges extended."""
    from scipy import ndimage
    return ndimage.gaussian_filter(x, sigma, mode="nearest", truncate=3.0).astype(np.float32)


# Depth as users have it, for the same scene and lens (bench_render.py's depth kinds): the exact
# planes snap onto the slice centres, real depth changes a little from pixel to pixel.
DEPTH_KINDS = ("planes", "slant", "net", "noise")


def depth_variant(depth, kind, *, seed=7):
    """The scene's depth as `kind` gives it (the matte and image stay as they are):

    planes  the exact planar depth
    slant   the wall and the ground replaced by one plane tilted in both directions (inverse
            depth linear in row and column, 12 m at the top left to 1.2 m at the bottom right):
            no two neighbours share a depth, not even along a row
    net     a monocular network's: area-downsampled 4x, bilinear back up, Gaussian sigma 1.5 px
    noise   a stereo sensor's: depth x (1 + 1 % Gaussian noise)
    """
    depth = np.asarray(depth, dtype=np.float32)
    if kind == "planes":
        return depth
    if kind == "slant":
        H, W = depth.shape
        yh = int(0.58 * H)
        g = np.linspace(0.0, 1.0, H - yh, dtype=np.float32)[:, None]
        ground = 1.0 / (1.0 / Z_WALL + (1.0 / Z_GROUND_NEAR - 1.0 / Z_WALL) * g)
        background = np.empty_like(depth, dtype=bool)
        background[:yh] = depth[:yh] == np.float32(Z_WALL)
        background[yh:] = depth[yh:] == ground
        t = (np.arange(H, dtype=np.float32)[:, None] / (H - 1) + np.arange(W, dtype=np.float32)[None, :] / (W - 1)) / 2
        plane = (1.0 / (1.0 / Z_WALL + (1.0 / Z_GROUND_NEAR - 1.0 / Z_WALL) * t)).astype(np.float32)
        return np.where(background, plane, depth)
    if kind == "net":
        return np.maximum(gaussian(bilinear_up(area_down(depth, 4), depth.shape), 1.5), np.float32(1e-3))
    if kind == "noise":
        rng = np.random.default_rng(seed)
        return (depth * (1 + np.float32(0.01) * rng.standard_normal(depth.shape, dtype=np.float32))).astype(np.float32)
    raise ValueError(f"unknown depth kind {kind!r}: expected one of {DEPTH_KINDS}")


def cached_scene(width=FULL_SIZE[0], height=FULL_SIZE[1], *, seed=0, max_coc=100.0, blades=6,
                 n_highlights=300, cache_dir=CACHE_DIR):
    """make_scene(), stored as .npy files under benchmarks/results/cache so that worker processes
    can load it without generating it again (loading allocates only the arrays themselves)."""
    key = dict(width=int(width), height=int(height), seed=seed, max_coc=float(max_coc),
               blades=blades, n_highlights=n_highlights, version=1)
    tag = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    d = os.path.join(cache_dir, f"scene_{width}x{height}_{tag}")
    names = ("image", "depth", "matte")
    files = [n + ".npy" for n in names] + ["meta.json"]
    if not all(os.path.exists(os.path.join(d, f)) for f in files):
        s = make_scene(width, height, seed=seed, max_coc=max_coc, blades=blades, n_highlights=n_highlights)
        os.makedirs(d, exist_ok=True)
        for n in names:
            np.save(os.path.join(d, n + ".npy"), s[n])
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(s["meta"], f, indent=1)
        s["dir"] = d
        return s
    return load_scene_dir(d)


def load_scene_dir(d):
    """Load a scene stored by cached_scene() (its "dir")."""
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    s = {n: np.load(os.path.join(d, n + ".npy")) for n in ("image", "depth", "matte")}
    lens = synthdof.ThinLens(focal_length_mm=meta["focal_length_mm"], f_number=meta["f_number"],
                             focus_distance=meta["focus_distance_m"], sensor_width_mm=meta["sensor_width_mm"])
    s.update(lens=lens, aperture=synthdof.Aperture(blades=meta["blades"]),
             coc=lens.coc(s["depth"], meta["width"]), meta=meta, dir=d)
    return s


def parse_size(text):
    w, h = (int(v) for v in text.lower().split("x"))
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size too small: {text}")
    return w, h


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=parse_size, default=FULL_SIZE, help="WxH (default 4032x3024)")
    p.add_argument("--max-coc", type=float, default=100.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", help="write pinhole | depth | matte | render preview (sRGB) here")
    a = p.parse_args(argv)
    import time
    t = time.perf_counter()
    s = make_scene(*a.size, seed=a.seed, max_coc=a.max_coc)
    print(f"scene {a.size[0]}x{a.size[1]} built in {time.perf_counter() - t:.2f} s")
    print(json.dumps(s["meta"], indent=1))
    if a.png:
        from PIL import Image
        out = synthdof.render(s["image"], s["depth"], matte=s["matte"], lens=s["lens"], aperture=s["aperture"])
        z = (1.0 / s["depth"] - 1.0 / Z_WALL) / (1.0 / Z_BAR - 1.0 / Z_WALL)
        grey = lambda m: np.repeat(m[:, :, None], 3, 2)
        row = np.concatenate([synthdof.linear_to_srgb(s["image"]), synthdof.linear_to_srgb(out),
                              grey(z), grey(s["matte"])], 1)
        Image.fromarray((np.clip(row, 0, 1) * 255 + 0.5).astype(np.uint8)).save(a.png)
        print("wrote", a.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
