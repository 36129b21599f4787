"""Command line: `python -m synthdof demo` and `python -m synthdof render` (also `synthdof ...`)."""
import argparse
import os
import sys
import time

import numpy as np


def _save_png(path, rgb8):
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit("synthdof: writing PNG needs Pillow: pip install 'synthdof[io]'")
    Image.fromarray(rgb8).save(path)


def _demo(args):
    import synthdof

    s = synthdof.load_sample()
    lens = synthdof.ThinLens(**dict(s["lens"], **({"f_number": args.f_number} if args.f_number else {})))
    ap = synthdof.Aperture(blades=args.blades, rotation=args.rotation)
    t0 = time.perf_counter()
    out = synthdof.render(s["image"], s["depth"], matte=s["matte"], lens=lens, aperture=ap)
    dt = time.perf_counter() - t0
    strip = np.concatenate([s["image"], out], axis=1) if args.side_by_side else out
    _save_png(args.out, strip)
    print(f"synthdof demo: {s['description']}; {lens!r}, {ap!r}; rendered in {dt:.2f} s -> {args.out}")
    return 0


def _load_image(path, what):
    if not os.path.exists(path):
        raise SystemExit(f"synthdof: {what} file not found: {path}")
    if path.endswith(".npy"):
        return np.load(path)
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit("synthdof: reading images needs Pillow: pip install 'synthdof[io]'")
    try:
        return np.asarray(Image.open(path))
    except Exception as e:  # noqa: BLE001 - report any decoder failure as a clear CLI error
        raise SystemExit(f"synthdof: cannot read {what} {path}: {e}")


def _render(args):
    import synthdof

    img = _load_image(args.image, "image")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    depth = np.asarray(_load_image(args.depth, "depth"), dtype=np.float32)
    if depth.ndim == 3:
        depth = depth[:, :, 0]
    if args.depth_scale:
        depth = depth * np.float32(args.depth_scale)
    matte = None
    if args.matte:
        m = np.asarray(_load_image(args.matte, "matte"))
        if m.ndim == 3:
            m = m[:, :, 0]
        matte = (m.astype(np.float32) / (np.iinfo(m.dtype).max if m.dtype.kind == "u" else 1.0)).astype(np.float32)
    try:
        if args.disparity:
            depth = synthdof.disparity_to_depth(np.maximum(depth, 1e-6))
        focus = synthdof.focus_from_matte(depth, matte) if args.focus == "auto" else float(args.focus)
        lens = synthdof.ThinLens(args.focal_length, args.f_number, focus, args.sensor_width)
        out = synthdof.render(img, depth, matte=matte, lens=lens,
                              aperture=synthdof.Aperture(blades=args.blades, rotation=args.rotation))
    except (ValueError, TypeError) as e:
        raise SystemExit(f"synthdof: {e}")
    if args.output.endswith(".npy"):
        np.save(args.output, out)
    else:
        if out.dtype != np.uint8:
            out = synthdof.linear_to_srgb(out, np.uint8)
        _save_png(args.output, out)
    print(f"synthdof: wrote {args.output}")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="synthdof", description="Physically based synthetic depth of field.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="render the packaged sample scene to a PNG")
    d.add_argument("--out", "-o", default="synthdof_demo.png", help="output PNG (default %(default)s)")
    d.add_argument("--blades", type=int, default=0, help="aperture blades (0 = circle)")
    d.add_argument("--rotation", type=float, default=0.0, help="aperture rotation, radians")
    d.add_argument("--f-number", type=float, default=None, help="override the sample's f-number")
    d.add_argument("--side-by-side", action="store_true", help="write input | render")
    d.set_defaults(func=_demo)
    r = sub.add_parser("render", help="render an image with a depth map")
    r.add_argument("image")
    r.add_argument("--depth", required=True, help="depth in metres (.npy, or an image with --depth-scale)")
    r.add_argument("--depth-scale", type=float, default=None, help="multiply depth by this (e.g. 0.001 for mm PNG)")
    r.add_argument("--disparity", action="store_true", help="the depth file holds disparity (1/depth)")
    r.add_argument("--matte", default=None)
    r.add_argument("--focal-length", type=float, default=50.0)
    r.add_argument("--f-number", type=float, default=2.0)
    r.add_argument("--focus", default="auto", help="metres, or 'auto' to focus on the matte")
    r.add_argument("--sensor-width", type=float, default=36.0)
    r.add_argument("--blades", type=int, default=0)
    r.add_argument("--rotation", type=float, default=0.0)
    r.add_argument("-o", "--output", required=True)
    r.set_defaults(func=_render)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
