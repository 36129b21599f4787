"""Image quality at large blurs: the ground-truth scenes rendered at 2x and 4x their size.

The Cycles ground-truth scenes (synthdof.load_ground_truth) are 768x512 with |CoC| up to about
45 px, so they exercise only the finest levels of the renderer. With the fixed-field-of-view lens the CoC grows with the
image width, so the same scene at s times the size has s times the blur: the pinhole image, depth
and matte are upsampled s x s (nearest neighbour: each pixel becomes an s x s block, depth stays
planar), rendered with the same lens, box-averaged back to 768x512 and scored with score_gt.py's
metrics against the unchanged ground truth. At 4x the blur reaches ~180 px, where the slices are
built and spread on grids of 4 x 4 pixels and coarser. Scores should stay near the 1x ones.

    python benchmarks/quality_scaled.py [--scales 1 2 4] [--json FILE]
"""
import argparse
import os
import sys
import time

import numpy as np

import benchlib


def run(scales):
    import synthdof
    rows = []
    for score, name, g, m, lens, ap in benchlib.gt_scenes():
        H, W = g["depth"].shape
        for s in scales:
            def up(a):
                return np.repeat(np.repeat(a, s, 0), s, 1)
            img, depth = up(g["pinhole"]), up(g["depth"])
            t = time.perf_counter()
            out = synthdof.render(img, depth, matte=up(g["alpha"]), lens=lens, aperture=ap)
            dt = time.perf_counter() - t
            down = out.reshape(H, s, W, s, 3).mean((1, 3))
            rows.append(dict(scene=name, scale=s, max_coc=float(np.abs(lens.coc(depth)).max()),
                             seconds=dt, **score.metrics(down, g, m)))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--json", default=os.path.join(benchlib.RESULTS, "quality_scaled.json"))
    a = ap.parse_args(argv)
    rows = run(a.scales)
    print(benchlib.table(rows, [("scene", "scene", "{}"), ("scale", "scale", "{}x"),
                                ("max_coc", "max |CoC| px", "{:.0f}"),
                                ("psnr", "PSNR", "{:.2f}"), ("band", "band", "{:.2f}"), ("far", "far", "{:.2f}"),
                                ("flux", "flux", "{:.3f}"), ("hl_peak", "hl_peak", "{:.3f}"),
                                ("seconds", "s", "{:.2f}")]))
    benchlib.write_json(a.json, dict(benchmark="quality_scaled", rows=rows, machine=benchlib.machine()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
