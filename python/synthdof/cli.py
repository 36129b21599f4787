"""Command line: `synthdof demo`, `synthdof render` and `synthdof batch` (also `python -m synthdof`).

Expected failures (missing or unreadable files, mismatched sizes, bad values, a full disk, too
little memory, a locked batch folder) print one line starting with "synthdof: error:" and exit
with status 1; usage errors exit with status 2; Ctrl-C prints one line and exits with 130.
Outputs are checked before the render (folder, extension, free space) and written crash-safely:
a failed run leaves any earlier file at the output path as it was."""
import argparse
import os
import sys
import time

import numpy as np


class CliError(Exception):
    """An error reported as one line, without a traceback.

    Examples
    --------
    >>> main(["render", "img.png", "--depth", "z.npy", "--focus", "near", "-o", "out.png"])
    1
    """


def _check_out_dir(path, what):
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise CliError(f"{what}: directory does not exist: {d}")


def _check_out_path(path, what, shape, dtype=np.uint8, bits=None):
    """The folder, the extension, the bits and the format's library of an output, before
    anything is read or rendered (the image size is checked once it is known)."""
    from ._io import _check_format

    _check_out_dir(path, what)
    if os.path.isdir(path):
        raise CliError(f"{what}: is a directory, not a file: {path}")
    _check_format(path, shape, np.dtype(dtype), bits, what)


def _check_outputs(outputs):
    """check_output for each (path, shape, dtype, bits, name), then the free space for all of
    them on each file system."""
    from ._io import check_free_space, check_output

    need = {}
    for path, shape, dtype, bits, name in outputs:
        size = check_output(path, shape, dtype, bits=bits, name=name, space=False)
        folder = os.path.dirname(os.path.abspath(path))
        dev = os.stat(folder).st_dev
        need.setdefault(dev, [folder, 0, f"{name} ({path})"])[1] += size
    for folder, size, name in need.values():
        check_free_space(folder, size, name)


def _demo(args):
    import synthdof

    _check_out_path(args.out, "--out", (1, 1, 3))
    s = synthdof.load_sample()
    lens_kw = dict(s["lens"])
    if args.f_number is not None:
        lens_kw["f_number"] = args.f_number
    lens = synthdof.ThinLens(**lens_kw)
    ap_kw = dict(s["aperture"])
    if args.blades is not None:
        ap_kw["blades"] = args.blades
    if args.rotation is not None:
        ap_kw["rotation"] = args.rotation
    ap = synthdof.Aperture(**ap_kw)
    h, w = s["image"].shape[:2]
    _check_outputs([(args.out, (h, w * (2 if args.side_by_side else 1), 3), s["image"].dtype, None, "--out")])
    t0 = time.perf_counter()
    out = synthdof.render(s["image"], s["depth"], matte=s["matte"], lens=lens, aperture=ap,
                          num_threads=args.threads)
    dt = time.perf_counter() - t0
    strip = np.concatenate([s["image"], out], axis=1) if args.side_by_side else out
    _write_image(args.out, strip, None, "--out")
    print(f"synthdof demo: {s['description']}; {lens!r}, {ap!r}; rendered in {dt:.2f} s -> {args.out}")
    return 0


def _parse_focus(text):
    if text == "auto":
        return "auto"
    try:
        v = float(text)
    except ValueError:
        raise CliError(f"--focus: expected a distance in metres or 'auto', got {text!r}") from None
    if not (v > 0 and np.isfinite(v)):
        raise CliError(f"--focus: must be a distance > 0 in metres, got {text!r}")
    return v


def _write_image(path, image, bits, name):
    from ._io import _write_image
    return _write_image(path, image, bits, name)


def _render(args):
    import synthdof
    from ._batch_scene import FLOAT_EXT, coc_stats, load_scene, render_scene, scene_coc
    from ._io import _image_writer, write_files_atomic

    float_out = os.path.splitext(args.output)[1].lower() in FLOAT_EXT and args.bits is None
    _check_out_path(args.output, "--output", (1, 1, 3), np.float32 if float_out else np.uint8, args.bits)
    if args.save_coc:
        _check_out_path(args.save_coc, "--save-coc", (1, 1), np.float32)
    focus = _parse_focus(args.focus)
    if not args.disparity and (args.K is not None or args.disparity_scale is not None):
        raise CliError("--K and --disparity-scale apply to disparity input: add --disparity")
    img, d, m = load_scene(args.image, args.depth, args.matte, depth_scale=args.depth_scale,
                           disparity=args.disparity, refine=args.refine, num_threads=args.threads)
    if focus == "auto" and m is None:
        raise CliError("--focus auto focuses on the subject: give --matte, or a focus distance in metres")
    h, w = img.shape[:2]
    outputs = [(args.output, (h, w, 3), np.float32 if float_out else img.dtype, args.bits, "--output")]
    if args.save_coc:
        outputs.append((args.save_coc, (h, w), np.float32, None, "--save-coc"))
    _check_outputs(outputs)
    params = {"focal_length_mm": args.focal_length, "f_number": args.f_number, "focus": focus,
              "sensor_width_mm": args.sensor_width, "model": args.model, "K": args.K}
    t0 = time.perf_counter()
    coc, lens, info = scene_coc(d, m, params, disparity=args.disparity,
                                disparity_scale=args.disparity_scale or 1.0, depth_path=args.depth)
    ap = synthdof.Aperture(blades=args.blades, rotation=args.rotation)
    try:
        out = render_scene(img, d, m, lens, coc, ap, float_out=float_out, num_threads=args.threads)
    except MemoryError as e:
        raise MemoryError(f"{args.image}: {e}") from None
    dt = time.perf_counter() - t0
    files = [(args.output, _image_writer(args.output, out, args.bits, "--output"), "--output")]
    if args.save_coc:
        files.append((args.save_coc, _image_writer(args.save_coc, coc, None, "--save-coc"), "--save-coc"))
    write_files_atomic(files)
    st = coc_stats(coc)
    focus_txt = (f"focus {info['focus_distance']:.3g} m" if "K" not in info else
                 f"focus disparity {info['focus_disparity']:.4g}, K {info['K']:.4g}")
    print(f"synthdof: {img.shape[1]}x{img.shape[0]}, {focus_txt}, CoC {st['min']:.1f}..{st['max']:.1f} px; "
          f"rendered in {dt:.2f} s -> {args.output}")
    return 0


def _batch(args):
    from ._batch import run_batch

    if args.workers < 1:
        raise CliError(f"--workers: must be >= 1, got {args.workers}")
    if args.scheduler is not None and args.workers > 1:
        raise CliError("--workers starts a local Dask cluster; with --scheduler the cluster's own workers run")
    if args.retries < 0:
        raise CliError(f"--retries: must be >= 0, got {args.retries}")
    if args.wait_lock < 0:
        raise CliError(f"--wait-lock: must be >= 0 seconds, got {args.wait_lock:g}")
    s = run_batch(args.config, args.outdir, workers=args.workers, scheduler=args.scheduler,
                  num_threads=args.threads, progress=not args.quiet, wait_lock=args.wait_lock,
                  retries=args.retries)
    for tid, msg in s["failed"]:
        print(f"synthdof: error: {tid}: {msg}", file=sys.stderr)
    print(f"synthdof batch: {s['rendered']} rendered, {s['skipped']} already done, {len(s['failed'])} failed, "
          f"{s['total']} in all -> {s['outdir']}")
    return 1 if s["failed"] else 0


def _threads(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if n == 0:
        raise argparse.ArgumentTypeError("0 threads: use a positive count, or -1 for all cores")
    return n


def build_parser():
    """The argument parser of the `synthdof` command.

    Returns
    -------
    argparse.ArgumentParser
        With the sub-commands demo, render and batch.

    Examples
    --------
    >>> args = build_parser().parse_args(["batch", "cfg.json", "-o", "out", "--wait-lock", "30"])
    >>> args.command, args.wait_lock
    ('batch', 30.0)
    """
    p = argparse.ArgumentParser(prog="synthdof", description="Physically based synthetic depth of field.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{demo,render,batch}")

    d = sub.add_parser("demo", help="render the packaged sample scene to a PNG",
                       description="Render the packaged sample portrait and write it as an image.")
    d.add_argument("--out", "-o", default="synthdof_demo.png", help="output image (default %(default)s)")
    d.add_argument("--blades", type=int, default=None, help="aperture blades (0 = circle; default: the sample's)")
    d.add_argument("--rotation", type=float, default=None, help="aperture rotation in radians")
    d.add_argument("--f-number", type=float, default=None, help="override the sample's f-number")
    d.add_argument("--side-by-side", action="store_true", help="write input | render")
    d.add_argument("--threads", type=_threads, default=None, help="threads (default: all cores)")
    d.set_defaults(func=_demo)

    r = sub.add_parser("render", help="render an image with a depth (or disparity) map",
                       description="Render shallow depth of field from an all-in-focus image and its depth map.")
    r.add_argument("image", help="all-in-focus image: PNG/JPEG/TIFF (8/16-bit sRGB), float TIFF/EXR/.npy (linear)")
    r.add_argument("--depth", required=True, help="depth map: metres (.npy/float TIFF/EXR), 16-bit PNG in mm "
                                                  "(see --depth-scale), or disparity with --disparity")
    r.add_argument("--depth-scale", type=float, default=None,
                   help="multiply the stored depth codes by this (default 1 for float files, 0.001 for 16-bit)")
    r.add_argument("--matte", default=None, help="subject matte (grey, or the alpha of an RGBA cut-out)")
    r.add_argument("--refine", action="store_true",
                   help="pass depth and matte through synthdof.refine first: depth from a network or a sensor "
                        "(holes as 0/NaN/inf, lower resolution than the image, edges blurred across the matte)")
    r.add_argument("--disparity", action="store_true",
                   help="the depth file holds disparity (inverse depth); integer files are normalised to [0, 1]")
    r.add_argument("--disparity-scale", type=float, default=None,
                   help="S in depth = S / disparity (metres; default 1) for --disparity")
    r.add_argument("--K", type=float, default=None,
                   help="with --disparity: CoC diameter in pixels per unit disparity, c = K (d_focus - d); "
                        "default from the lens and --disparity-scale")
    r.add_argument("--focal-length", type=float, default=50.0, help="mm (default %(default)s)")
    r.add_argument("--f-number", type=float, default=2.0, help="(default %(default)s)")
    r.add_argument("--focus", default="auto", help="focus distance in metres, or 'auto' to focus on the matte")
    r.add_argument("--sensor-width", type=float, default=36.0, help="mm the image width spans (default %(default)s)")
    r.add_argument("--model", choices=("fixed_fov", "real_lens"), default="fixed_fov", help="thin-lens CoC model")
    r.add_argument("--blades", type=int, default=0, help="aperture blades (0 = circle)")
    r.add_argument("--rotation", type=float, default=0.0, help="aperture rotation in radians")
    r.add_argument("--bits", type=int, choices=(8, 16), default=None, help="PNG/TIFF bits (default 8 for PNG)")
    r.add_argument("--save-coc", default=None, help="also write the signed CoC map (pixels), e.g. coc.npy")
    r.add_argument("--threads", type=_threads, default=None, help="threads (default: all cores)")
    r.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .tif, .exr, .npy)")
    r.set_defaults(func=_render)

    b = sub.add_parser("batch", help="render a manifest of inputs x seeded lens samples (resumable, Dask)",
                       description="Render every input of CONFIG with samples of randomly drawn lens "
                                   "parameters, write the images and one JSON record per output to "
                                   "OUTDIR/metadata.jsonl; rerunning skips finished outputs.")
    b.add_argument("config", help="batch config (JSON; TOML on Python >= 3.11), see docs/cli.md")
    b.add_argument("-o", "--outdir", required=True, help="output directory (created if needed)")
    b.add_argument("--workers", type=int, default=1,
                   help="> 1: run on a Dask LocalCluster with this many worker processes")
    b.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:port)")
    b.add_argument("--threads", type=_threads, default=None,
                   help="threads per render (default: all cores; cores / workers on a LocalCluster)")
    b.add_argument("--wait-lock", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to this long for another batch running on OUTDIR (default: refuse at once)")
    b.add_argument("--retries", type=int, default=2,
                   help="on Dask, runs again of a task whose worker process died (default %(default)s)")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    b.set_defaults(func=_batch)
    return p


def _describe(e):
    """One line for an expected failure."""
    if isinstance(e, OSError) and e.strerror and not isinstance(e, (FileNotFoundError, IsADirectoryError)) \
            and e.filename is None:
        return e.strerror  # our own messages: "<argument>: cannot write <file>: <reason>"
    if isinstance(e, OSError) and e.errno is None:
        return str(e)
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror}"
    if isinstance(e, MemoryError):
        return f"out of memory: {e}" if "memory" not in str(e) else str(e)
    return str(e) or type(e).__name__


def main(argv=None):
    """Run the `synthdof` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 success, 1 an expected failure (reported as one
        ``synthdof: error:`` line), 130 Ctrl-C (one line, no traceback). Usage errors exit with
        status 2 (SystemExit).

    Examples
    --------
    >>> import os, tempfile
    >>> main(["render", "missing.png", "--depth", "z.npy", "--focus", "2",
    ...       "-o", os.path.join(tempfile.mkdtemp(), "out.png")])
    1
    """
    try:
        args = build_parser().parse_args(argv)
        from ._batch_config import BatchError
        try:
            return args.func(args)
        except (CliError, BatchError, OSError, ValueError, TypeError, ImportError, MemoryError) as e:
            print(f"synthdof: error: {_describe(e)}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("synthdof: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
