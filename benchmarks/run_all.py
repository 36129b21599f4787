"""Run every benchmark (each in its own process, one after the other) and print one summary.

    python benchmarks/run_all.py                 # full size: about 25 minutes on 2 cores
    python benchmarks/run_all.py --quick         # small sizes, 1-2 repeats: a smoke check
    python benchmarks/run_all.py --only scatter render
    python benchmarks/run_all.py --summary       # only re-print the summary of the last results

Each benchmark writes its own JSON under benchmarks/results/ (scatter, render, refine,
afternoon, peers); the combined summary goes to benchmarks/results/all.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import benchlib

STEPS = {
    "scatter": (["bench_scatter.py"], ["--size", "640x480", "--repeats", "2"]),
    "render": (["bench_render.py"], ["--size", "1008x756", "--repeats", "2", "--first-runs", "2"]),
    "refine": (["bench_refine.py"], ["--size", "1008x756", "--repeats", "2"]),
    "afternoon": (["afternoon_baseline.py"], ["--size", "1008x756", "--repeats", "1"]),
    "peers": (["bench_peers.py", "--blender-gt"], ["--gegl-size", "1008x756", "--blender-size", "640x360",
                                                   "--repeats", "1", "--synthdof-repeats", "2"]),
}


def _load(name, results):
    p = os.path.join(results, f"{name}.json")
    if os.path.exists(p):
        with open(p) as f:
            return json.load(f)
    return None


def summary(results):
    """One row per headline number: (what, value, detail)."""
    rows = []
    add = lambda what, value, detail="": rows.append(dict(what=what, value=value, detail=detail))
    sc = _load("scatter", results)
    if sc:
        W, H = sc["size"]
        for r in sc["radius_ratio"]["rows"]:
            add(f"scatter {W}x{H} t(CoC {sc['radius_ratio']['hi']:.0f})/t(CoC {sc['radius_ratio']['lo']:.0f})",
                f"{r['ratio']:.2f}", f"{r['aperture']}, {r['threads']} thread(s)")
        for r in sc["rows"]:
            if r["threads"] == max(x["threads"] for x in sc["rows"]):
                add(f"scatter {W}x{H} CoC {r['coc']:.0f} {r['aperture']}", f"{r['median_s']:.2f} s",
                    f"{r['threads']} threads, min {r['min_s']:.2f} s")
        for r in sc["thread_speedup"]:
            add(f"scatter thread speed-up CoC {r['coc']:.0f} {r['aperture']}", f"{r['speedup']:.2f}", "")
    rd = _load("render", results)
    if rd:
        W, H = rd["size"]
        for r in rd["rows"]:
            if r["label"] == "render":
                add(f"render {W}x{H} max CoC {r['max_coc']:.0f} hexagon", f"{r['median_s']:.2f} s",
                    f"{r['threads']} thread(s), min {r['min_s']:.2f} s, "
                    f"RSS +{r['rss_peak_mb'] or float('nan'):.0f} MB, "
                    f"Python peak {r['py_peak_mb']:.0f} MB")
        for r in rd["rows"]:
            if r["label"].startswith("render ") and not r["label"].startswith("render maxCoC"):
                add(f"render {W}x{H} {r['label'][7:]} depth", f"{r['median_s']:.2f} s",
                    f"{r['threads']} thread(s), min {r['min_s']:.2f} s, other load {r['foreign_load']:.0%}")
        for r in rd["rows"]:
            if r.get("first_runs") and not r["label"].startswith("render maxCoC"):
                add(f"{r['label']} first call / steady", f"{r['first_over_steady']:.2f}",
                    f"{r['threads']} threads, median of {r['first_runs']} fresh processes "
                    f"({r['first_over_steady_lo']:.2f}-{r['first_over_steady_hi']:.2f})")
        d = rd["derived"]
        for nt, ratios in d.get("depth_over_planes", {}).items():
            add("render depth kind / exact planes (interleaved)",
                ", ".join(f"{k} {v:.2f}" for k, v in ratios.items() if k != "planes"), f"{nt} thread(s)")
        for nt, v in d["thread_speedup"].items():
            add(f"{nt} thread speed-up", f"{v:.2f}", "1 thread / 2 threads")
        for nt, v in d["render_over_scatter"].items():
            add("render / scatter (same input)", f"{v:.2f}", f"{nt} thread(s)")
        rr = d["radius_ratio"]
        add(f"render t(max CoC {rr['hi']:.0f}) / t(max CoC {rr['lo']:.0f})", f"{rr['ratio']:.2f}",
            f"{rr['threads']} threads")
        for r in rd["gt"]:
            if r["threads"] == max(x["threads"] for x in rd["gt"]):
                add(f"render gt {r['scene']} 768x512", f"{r['median_s']:.2f} s",
                    f"{r['threads']} threads; Blender Defocus recorded "
                    f"{r.get('t_blender_defocus_s') or float('nan'):.2f} s")
    rf = _load("refine", results)
    if rf:
        W, H = rf["size"]
        for r in rf["rows"]:
            shape = "x".join(str(v) for v in r["depth_shape"][::-1])
            add(f"refine {W}x{H} {r['input']} depth {shape}", f"{r['median_s']:.2f} s",
                f"{r['threads']} thread(s), C core {r['filter_s'] or float('nan'):.2f} s, "
                f"refine + render {r.get('refine_render_s', float('nan')):.2f} s, other load {r['foreign_load']:.0%}")
        rr = rf["derived"]["radius_ratio"]
        if rr:
            add(f"refine t(edge_width {rr['hi']}) / t(edge_width {rr['lo']})", f"{rr['ratio']:.2f}",
                f"net input, {rr['threads']} threads")
    af = _load("afternoon", results)
    if af:
        for nt, v in af["synthdof_speedup"].items():
            add("afternoon layered FFT / synthdof.render", f"{v:.2f}",
                f"{af['size'][0]}x{af['size'][1]}, {nt} thread(s), > 1: synthdof faster")
    pe = _load("peers", results)
    if pe:
        g = pe.get("gegl")
        if g and "skipped" in g:
            add("gegl:lens-blur", "skipped", g["skipped"])
        elif g:
            for r in g["rows"]:
                add("gegl:lens-blur / synthdof.render", f"{r['ratio_render']:.2f}",
                    f"{g['size'][0]}x{g['size'][1]}, {r['threads']} thread(s), GEGL {r['median_s']:.2f} s "
                    f"(op only {r['ratio_render_op']:.2f})")
                add("gegl:lens-blur / synthdof.scatter (disk)", f"{r['ratio_scatter']:.2f}",
                    f"{r['threads']} thread(s) (op only {r['ratio_scatter_op']:.2f})")
        b = pe.get("blender")
        if b and "skipped" in b:
            add("Blender Defocus", "skipped", b["skipped"])
        elif b:
            for r in b["rows"]:
                add("Blender Defocus / synthdof.render", f"{r['ratio_render']:.2f}",
                    f"{b['size'][0]}x{b['size'][1]}, max CoC {b['max_coc']:.0f}, {r['threads']} thread(s), "
                    f"Blender {r['median_s']:.2f} s vs {r['synthdof_render_s']:.2f} s")
        bg = pe.get("blender_gt")
        if bg and "rows" in bg:
            for r in bg["rows"]:
                add(f"Blender Defocus / render, gt {r['scene']}", f"{r['ratio_render']:.2f}",
                    f"Blender {r['median_s']:.2f} s (output matches stored to {r['rel_diff_vs_stored']:.4f})")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description="Run all synthdof benchmarks and print a combined summary.")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke check)")
    p.add_argument("--only", nargs="+", choices=list(STEPS))
    p.add_argument("--summary", action="store_true", help="only print the summary of existing results")
    p.add_argument("--results", default=benchlib.RESULTS)
    a = p.parse_args(argv)
    steps = a.only or list(STEPS)
    failed, rebuilt = [], []
    if not a.summary:
        for name in steps:
            script, quick = STEPS[name]
            cmd = [sys.executable, os.path.join(benchlib.HERE, script[0])] + script[1:]
            cmd += (quick if a.quick else []) + ["--json", os.path.join(a.results, f"{name}.json")]
            print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
            t = time.perf_counter()
            built = benchlib.machine().get("core_built")
            r = subprocess.run(cmd)
            print(f"=== {name}: exit {r.returncode}, {time.perf_counter() - t:.0f} s", flush=True)
            if benchlib.machine().get("core_built") != built:
                print(f"=== {name}: WARNING the installed C core was rebuilt during this step: "
                      f"its numbers mix two builds", flush=True)
                rebuilt.append(name)
            if r.returncode:
                failed.append(name)
    rows = summary(a.results)
    print("\n=== summary")
    print(benchlib.table(rows, [("what", "what", "{}"), ("value", "value", "{}"), ("detail", "detail", "{}")]))
    benchlib.write_json(os.path.join(a.results, "all.json"),
                        dict(summary=rows, failed=failed, rebuilt_during=rebuilt, machine=benchlib.machine()))
    if failed:
        print(f"failed: {' '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
