"""Render scenes.describe(seed) with Blender Cycles into one .npz each (the format of ../shared/gt).

Runs inside Blender's Python (Debian's `blender` package, 3.4):

    blender -b --factory-startup --python-exit-code 1 --python render_scene.py -- \
        --out DIR --seeds 0 1 2 [--samples 512] [--size 384x256] [--threads 1]

generate.py is the front end that calls it. Per scene: a pinhole render (depth of field off) with
the Z pass, the subject matte as a shader AOV (each subject material writes 1, the rest 0, so the
AOV accumulates the subject's fractional coverage over the pixel's samples), and Blender's
compositor Defocus node fed the exact CoC radius computed from that Z pass; then the thin-lens
render (depth of field on: the same camera, its aperture sampled). Every material is
emission-only and light paths end at the first surface (max bounces 0; see-through surfaces are
passed by transparent bounces), so the only noise in the thin-lens render is aperture sampling.
"""
import json
import math
import os
import sys
import tempfile
import time

import bpy
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scenes import describe  # noqa: E402

AOV = "matte"


# --- materials --------------------------------------------------------------------------------

def _emission_material(name, spec=None, color=None, strength=1.0, subject=False, opacity=1.0):
    """An emission-only material: a texture between two colours (spec) or one colour; see-through
    where opacity < 1; writes the subject AOV."""
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    nt = m.node_tree
    for n in list(nt.nodes):
        nt.nodes.remove(n)
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    em = nt.nodes.new("ShaderNodeEmission")
    em.inputs["Strength"].default_value = strength
    if spec is None:
        em.inputs["Color"].default_value = (*color, 1.0)
    else:
        # world position: spec["scale"] is in features per metre, whatever the object's size
        socket = nt.nodes.new("ShaderNodeNewGeometry").outputs["Position"]
        c1, c2, kind = (*spec["color1"], 1.0), (*spec["color2"], 1.0), spec["kind"]
        if kind == "checker":
            t = nt.nodes.new("ShaderNodeTexChecker")
            t.inputs["Color1"].default_value, t.inputs["Color2"].default_value = c1, c2
            t.inputs["Scale"].default_value = spec["scale"]
            nt.links.new(socket, t.inputs["Vector"])
            col = t.outputs["Color"]
        elif kind == "brick":
            t = nt.nodes.new("ShaderNodeTexBrick")
            t.inputs["Color1"].default_value, t.inputs["Color2"].default_value = c1, c2
            t.inputs["Mortar"].default_value = (0.8 * c1[0] + 0.2, 0.8 * c1[1] + 0.2, 0.8 * c1[2] + 0.2, 1.0)
            t.inputs["Scale"].default_value = spec["scale"]
            nt.links.new(socket, t.inputs["Vector"])
            col = t.outputs["Color"]
        else:
            if kind == "smooth":
                t = nt.nodes.new("ShaderNodeTexNoise")
                t.inputs["Scale"].default_value = spec["scale"]
                t.inputs["Detail"].default_value = 0.0
            elif kind == "noise":
                t = nt.nodes.new("ShaderNodeTexNoise")
                t.inputs["Scale"].default_value = spec["scale"]
                t.inputs["Detail"].default_value = 6.0
            elif kind == "voronoi":
                t = nt.nodes.new("ShaderNodeTexVoronoi")
                t.inputs["Scale"].default_value = spec["scale"]
            else:  # stripes: a wave texture
                t = nt.nodes.new("ShaderNodeTexWave")
                t.inputs["Scale"].default_value = spec["scale"]
                t.inputs["Distortion"].default_value = 2.0
            nt.links.new(socket, t.inputs["Vector"])
            ramp = nt.nodes.new("ShaderNodeValToRGB")
            ramp.color_ramp.elements[0].color, ramp.color_ramp.elements[1].color = c1, c2
            if kind == "smooth":
                ramp.color_ramp.elements[0].position, ramp.color_ramp.elements[1].position = 0.3, 0.7
            nt.links.new(t.outputs["Distance" if kind == "voronoi" else "Fac"], ramp.inputs["Fac"])
            col = ramp.outputs["Color"]
        nt.links.new(col, em.inputs["Color"])
    shader = em.outputs["Emission"]
    if opacity < 1.0:
        tr = nt.nodes.new("ShaderNodeBsdfTransparent")
        mix = nt.nodes.new("ShaderNodeMixShader")
        mix.inputs["Fac"].default_value = opacity
        nt.links.new(tr.outputs["BSDF"], mix.inputs[1])
        nt.links.new(em.outputs["Emission"], mix.inputs[2])
        shader = mix.outputs["Shader"]
    nt.links.new(shader, out.inputs["Surface"])
    aov = nt.nodes.new("ShaderNodeOutputAOV")
    if hasattr(aov, "aov_name"):
        aov.aov_name = AOV
    else:
        aov.name = AOV
    aov.inputs["Value"].default_value = 1.0 if subject else 0.0
    return m


def _assign(obj, mat):
    obj.data.materials.clear()
    obj.data.materials.append(mat)


# --- geometry ---------------------------------------------------------------------------------

def _sphere(center, radius, segments=48, rings=24):
    bpy.ops.mesh.primitive_uv_sphere_add(segments=segments, ring_count=rings, radius=radius, location=center)
    o = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    return o


def _plane(center, size, rotation):
    bpy.ops.mesh.primitive_plane_add(size=1.0, location=center, rotation=rotation)
    o = bpy.context.active_object
    o.scale = (size[0], size[1], 1.0)
    return o


def build(d):
    """The scene of description d in an empty Blender scene; returns the camera object."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    W, H = d["width"], d["height"]
    ln = d["lens"]
    # camera at the origin looking along +y, z up
    cam_data = bpy.data.cameras.new("camera")
    cam_data.lens = ln["focal_length_mm"]
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = ln["sensor_width_mm"]
    cam_data.clip_start, cam_data.clip_end = 0.05, 10000.0
    cam_data.dof.focus_distance = ln["focus_distance_m"]
    cam_data.dof.aperture_fstop = ln["f_number"]
    cam_data.dof.aperture_blades = ln["aperture_blades"]
    cam_data.dof.aperture_rotation = ln["aperture_rotation_rad"]
    cam = bpy.data.objects.new("camera", cam_data)
    cam.rotation_euler = (math.pi / 2, 0.0, 0.0)
    sc.collection.objects.link(cam)
    sc.camera = cam
    s = d["subject"]
    # subject
    head = _sphere(s["head"]["center"], s["head"]["radius"])
    head.scale = s["head"]["squash"]
    _assign(head, _emission_material("head", s["head"]["material"], subject=True))
    b = s["body"]
    bpy.ops.mesh.primitive_cylinder_add(vertices=64, radius=0.5 * b["size"][0], depth=b["size"][2],
                                        location=b["center"])
    body = bpy.context.active_object
    body.scale = (1.0, b["size"][1] / b["size"][0] * 2.0, 1.0)
    bpy.ops.object.shade_smooth()
    _assign(body, _emission_material("body", b["material"], subject=True))
    if s["hair"]["strands"]:
        cu = bpy.data.curves.new("hair", "CURVE")
        cu.dimensions = "3D"
        cu.fill_mode = "FULL"
        cu.bevel_resolution = 1
        for st in s["hair"]["strands"]:
            sp = cu.splines.new("NURBS")
            sp.points.add(len(st["points"]) - 1)
            for p, xyz in zip(sp.points, st["points"]):
                p.co = (*xyz, 1.0)
                p.radius = 1.0
            sp.order_u = 3
            sp.use_endpoint_u = True
        # one radius per object in Blender: the strands' median (their spread is in the points)
        cu.bevel_depth = float(np.median([st["radius"] for st in s["hair"]["strands"]]))
        hair = bpy.data.objects.new("hair", cu)
        sc.collection.objects.link(hair)
        hair.data.materials.append(_emission_material("hair", color=s["hair"]["color"], subject=True))
    if "glasses" in s:
        g = s["glasses"]
        rim = _emission_material("rim", color=g["rim_color"], subject=True)
        glass = _emission_material("glass", color=g["tint"], subject=True, opacity=g["opacity"])
        for side in (-1, 1):
            c = (g["center"][0] + side * 0.5 * g["spacing"], g["center"][1], g["center"][2])
            bpy.ops.mesh.primitive_torus_add(major_radius=g["radius"], minor_radius=g["rim"], location=c,
                                             rotation=(math.pi / 2, 0, 0), major_segments=48, minor_segments=8)
            _assign(bpy.context.active_object, rim)
            bpy.ops.mesh.primitive_circle_add(vertices=48, radius=g["radius"], fill_type="NGON", location=c,
                                              rotation=(math.pi / 2, 0, 0))
            _assign(bpy.context.active_object, glass)
    if "held" in s:
        h = s["held"]
        bpy.ops.mesh.primitive_cylinder_add(vertices=48, radius=h["radius"], depth=h["height"], location=h["center"])
        bpy.ops.object.shade_smooth()
        _assign(bpy.context.active_object, _emission_material("held", h["material"], subject=True))
    # background wall, wide enough to fill the frame from any lens here
    bg = d["background"]
    zb = bg["distance"]
    half = 0.6 * ln["sensor_width_mm"] / ln["focal_length_mm"] * zb * max(W, H) / W + 1.0
    wall = _plane((0.0, zb, 0.0), (2 * half, 2 * half), (math.pi / 2, 0.0, 0.0))
    _assign(wall, _emission_material("wall", bg["material"]))
    # ground, from under the camera to the wall (slanted: rising or falling with distance)
    gr = d["ground"]
    slope = math.radians(gr["slope_deg"])
    length = zb * 1.05 / max(math.cos(slope), 0.5)
    ground = _plane((0.0, 0.5 * zb, gr["height"] + 0.5 * zb * math.tan(slope)), (2 * half, length), (slope, 0.0, 0.0))
    _assign(ground, _emission_material("ground", gr["material"]))
    # small bright lights
    for i, li in enumerate(d["lights"]):
        o = _sphere(li["center"], li["radius"], segments=16, rings=8)
        _assign(o, _emission_material(f"light{i}", color=li["color"], strength=li["strength"]))
    # near occluders (not the subject)
    for i, oc in enumerate(d["occluders"]):
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=oc["center"],
                                        rotation=(0.0, math.radians(oc["tilt_deg"]), 0.0))
        o = bpy.context.active_object
        o.scale = oc["size"]
        _assign(o, _emission_material(f"occluder{i}", oc["material"]))
    return cam


# --- rendering --------------------------------------------------------------------------------

def _settings(d, samples, threads, seed):
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    sc.cycles.device = "CPU"
    sc.render.resolution_x, sc.render.resolution_y = d["width"], d["height"]
    sc.render.resolution_percentage = 100
    sc.cycles.samples = samples
    sc.cycles.use_adaptive_sampling = False
    sc.cycles.use_denoising = False
    sc.cycles.seed = seed
    sc.cycles.max_bounces = 0
    sc.cycles.transparent_max_bounces = 16
    sc.cycles.caustics_reflective = sc.cycles.caustics_refractive = False
    sc.render.film_transparent = False
    sc.view_settings.view_transform = "Standard"
    sc.render.threads_mode = "FIXED" if threads else "AUTO"
    if threads:
        sc.render.threads = threads
    sc.world = bpy.data.worlds.new("world")
    sc.world.color = (0.0, 0.0, 0.0)
    vl = sc.view_layers[0]
    vl.use_pass_z = True
    if AOV not in [a.name for a in vl.aovs]:
        a = vl.aovs.add()
        a.name, a.type = AOV, "VALUE"


def _compositor(outputs, tmp):
    """A compositor writing the given {name: socket-maker} to 32-bit EXR files in tmp."""
    sc = bpy.context.scene
    sc.use_nodes = True
    sc.render.use_compositing = True
    nt = sc.node_tree
    for n in list(nt.nodes):
        nt.nodes.remove(n)
    rl = nt.nodes.new("CompositorNodeRLayers")
    fo = nt.nodes.new("CompositorNodeOutputFile")
    fo.base_path = tmp
    fo.format.file_format = "OPEN_EXR"
    fo.format.color_depth = "32"
    fo.format.color_mode = "RGBA"
    fo.file_slots.clear()
    comp = nt.nodes.new("CompositorNodeComposite")
    nt.links.new(rl.outputs["Image"], comp.inputs["Image"])
    for name, make in outputs.items():
        fo.file_slots.new(name + "_")
        nt.links.new(make(nt, rl), fo.inputs[name + "_"])


def _read_exr(path, channels):
    im = bpy.data.images.load(path, check_existing=False)
    im.colorspace_settings.name = "Non-Color"
    w, h = im.size
    px = np.empty(w * h * 4, np.float32)
    im.pixels.foreach_get(px)
    bpy.data.images.remove(im)
    px = px.reshape(h, w, 4)[::-1]  # Blender stores the bottom row first
    return np.ascontiguousarray(px[:, :, :channels] if channels > 1 else px[:, :, 0])


def _defocus(d):
    """Blender's Defocus node fed the exact CoC radius from the Z pass (the peer)."""
    ln = d["lens"]
    f = ln["focal_length_mm"] / 1000.0
    half_a = 0.5 * f * f * d["width"] / (ln["f_number"] * ln["sensor_width_mm"] / 1000.0)

    def make(nt, rl):
        def math_node(op, a, b=None):
            n = nt.nodes.new("CompositorNodeMath")
            n.operation = op
            for i, v in enumerate((a, b)):
                if v is None:
                    continue
                if isinstance(v, float):
                    n.inputs[i].default_value = v
                else:
                    nt.links.new(v, n.inputs[i])
            return n.outputs[0]
        inv = math_node("DIVIDE", 1.0, rl.outputs["Depth"])
        rad = math_node("MULTIPLY", math_node("ABSOLUTE", math_node("SUBTRACT", inv, 1.0 / ln["focus_distance_m"])),
                        half_a)
        df = nt.nodes.new("CompositorNodeDefocus")
        blades = ln["aperture_blades"]
        df.bokeh = {3: "TRIANGLE", 4: "SQUARE", 5: "PENTAGON", 6: "HEXAGON", 7: "HEPTAGON",
                    8: "OCTAGON"}.get(blades, "CIRCLE")
        df.angle = ln["aperture_rotation_rad"]
        df.use_zbuffer = False
        df.z_scale = 1.0
        df.blur_max = 200.0
        df.use_preview = False
        df.use_gamma_correction = False
        nt.links.new(rl.outputs["Image"], df.inputs["Image"])
        nt.links.new(rad, df.inputs["Z"])
        return df.outputs["Image"]
    return make


def render(seed, out_dir, samples=512, pinhole_samples=64, width=384, height=256, threads=0, peer=True,
           mix="natural"):
    """Render the scene of seed (and mix); writes out_dir/scene_<seed>.npz and returns its path."""
    d = describe(seed, width, height, mix)
    cam = build(d)
    _settings(d, pinhole_samples, threads, seed)
    tmp = tempfile.mkdtemp(prefix="gt_")
    sc = bpy.context.scene
    outputs = {"pinhole": lambda nt, rl: rl.outputs["Image"], "depth": lambda nt, rl: rl.outputs["Depth"],
               "alpha": lambda nt, rl: rl.outputs[AOV]}
    if peer:
        outputs["defocus"] = _defocus(d)
    _compositor(outputs, tmp)
    cam.data.dof.use_dof = False
    sc.render.filepath = os.path.join(tmp, "composite")
    t0 = time.perf_counter()
    bpy.ops.render.render(write_still=False)
    t_pinhole = time.perf_counter() - t0
    frame = f"{sc.frame_current:04d}"
    arrays = {"pinhole": _read_exr(os.path.join(tmp, f"pinhole_{frame}.exr"), 3),
              "depth": _read_exr(os.path.join(tmp, f"depth_{frame}.exr"), 1),
              "alpha": np.clip(_read_exr(os.path.join(tmp, f"alpha_{frame}.exr"), 1), 0.0, 1.0)}
    if peer:
        arrays["blender_defocus"] = _read_exr(os.path.join(tmp, f"defocus_{frame}.exr"), 3).astype(np.float16)
    # the thin lens
    _compositor({"lens": lambda nt, rl: rl.outputs["Image"]}, tmp)
    sc.cycles.samples = samples
    cam.data.dof.use_dof = True
    t0 = time.perf_counter()
    bpy.ops.render.render(write_still=False)
    t_lens = time.perf_counter() - t0
    arrays["lens"] = _read_exr(os.path.join(tmp, f"lens_{frame}.exr"), 3).astype(np.float16)
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)
    meta = dict(d["lens"], width=d["width"], height=d["height"], seed=seed, samples=samples,
                pinhole_samples=pinhole_samples, blender=bpy.app.version_string,
                t_pinhole_s=round(t_pinhole, 2), t_lens_s=round(t_lens, 2), scene=d)
    path = os.path.join(out_dir, f"scene_{seed:04d}.npz")
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    return path


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="render_scene.py")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--pinhole-samples", type=int, default=64)
    ap.add_argument("--size", default="384x256")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--mix", default="natural")
    a = ap.parse_args(argv)
    w, h = (int(v) for v in a.size.split("x"))
    os.makedirs(a.out, exist_ok=True)
    for seed in a.seeds:
        t0 = time.perf_counter()
        p = render(seed, a.out, a.samples, a.pinhole_samples, w, h, a.threads, not a.no_peer, a.mix)
        print(f"scene {seed}: {p} ({time.perf_counter() - t0:.1f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])
