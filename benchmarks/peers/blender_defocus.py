"""Blender compositor Defocus node, run headless inside Blender:

    blender -b --factory-startup -t THREADS --python benchmarks/peers/blender_defocus.py -- \
        --image IMAGE.npy --radius RADIUS.npy --out OUT.exr --json TIMES.json \
        [--bokeh HEXAGON] [--angle 0] [--repeats 3]

IMAGE.npy: (H, W, 4) float32 RGBA, linear light; RADIUS.npy: (H, W, 4) float32 with the CoC
*radius* in pixels in R, G and B. Both in Blender's pixel order, row 0 at the *bottom* (the
caller flips them), so that this script needs nothing beyond Blender's own Python (Debian's
Blender has no NumPy). OUT.exr gets the result (uncompressed float OpenEXR, linear light). The
node tree is Image -> Defocus (use_zbuffer off, so the Z input is read as a blur radius:
radius = Z * z_scale with z_scale 1, blur_max = the largest radius) -> Composite, and the last
result is saved from the Render Result. Compositing runs through bpy.ops.render.render(); the
tree has no Render Layers node, so no scene is rendered, only composited. Each repeat is timed; the
same tree with the Defocus node bypassed is timed too (the fixed cost of a compositor run:
image upload, conversion, output), so that the Defocus node's own time can be separated.
"""
import argparse
import ast
import json
import struct
import sys
import time
from array import array

import bpy


def parse():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    p = argparse.ArgumentParser(prog="blender_defocus.py")
    p.add_argument("--image", required=True)
    p.add_argument("--radius", required=True)
    p.add_argument("--out")
    p.add_argument("--json", required=True)
    p.add_argument("--bokeh", default="CIRCLE")
    p.add_argument("--angle", type=float, default=0.0, help="bokeh rotation, radians")
    p.add_argument("--threshold", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    return p.parse_args(argv)


def load_npy(path):
    """(shape, array('f')) of a little-endian float32 C-order .npy file (format 1.0 or 2.0)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not a .npy file")
    if raw[6] == 1:
        n, start = struct.unpack("<H", raw[8:10])[0], 10
    else:
        n, start = struct.unpack("<I", raw[8:12])[0], 12
    hdr = ast.literal_eval(raw[start:start + n].decode("latin1"))
    if hdr["descr"] != "<f4" or hdr["fortran_order"]:
        raise ValueError(f"{path}: expected little-endian float32 in C order, got {hdr}")
    data = array("f")
    data.frombytes(raw[start + n:])
    return tuple(hdr["shape"]), data


def float_image(name, shape, data, non_color=False):
    H, W = shape[:2]
    img = bpy.data.images.new(name, W, H, alpha=True, float_buffer=True)
    if non_color:
        img.colorspace_settings.name = "Non-Color"
    img.pixels.foreach_set(data)
    return img


def main():
    a = parse()
    shape, rgba = load_npy(a.image)
    zshape, zimg = load_npy(a.radius)
    if shape != zshape or len(shape) != 3 or shape[2] != 4:
        raise ValueError(f"image {shape} and radius {zshape} must both be (H, W, 4)")
    H, W = shape[:2]
    rmax = max(zimg[0::4])

    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = W, H
    scene.render.resolution_percentage = 100
    scene.render.use_compositing = True
    scene.render.use_sequencer = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.use_nodes = True
    tree = scene.node_tree
    for n in list(tree.nodes):
        tree.nodes.remove(n)
    im_node = tree.nodes.new("CompositorNodeImage")
    im_node.image = float_image("src", shape, rgba)
    z_node = tree.nodes.new("CompositorNodeImage")
    z_node.image = float_image("radius", shape, zimg, non_color=True)
    dof = tree.nodes.new("CompositorNodeDefocus")
    dof.use_zbuffer = False
    dof.z_scale = 1.0
    dof.blur_max = float(max(1.0, -(-rmax // 1)))
    dof.bokeh = a.bokeh
    dof.angle = a.angle
    dof.f_stop = 128.0  # unused without the z-buffer
    dof.threshold = a.threshold
    dof.use_gamma_correction = False
    dof.use_preview = False
    comp = tree.nodes.new("CompositorNodeComposite")
    tree.links.new(im_node.outputs["Image"], dof.inputs["Image"])
    tree.links.new(z_node.outputs["Image"], dof.inputs["Z"])

    def link_out(src):
        for node in (comp,):
            for l in list(node.inputs["Image"].links):
                tree.links.remove(l)
            tree.links.new(src, node.inputs["Image"])

    def timed(n):
        times = []
        for i in range(n):
            dof.angle = a.angle + 1e-6 * (i % 2)  # touch the node so nothing is reused from a previous run
            t = time.perf_counter()
            bpy.ops.render.render(write_still=False)
            times.append(time.perf_counter() - t)
        return times

    link_out(im_node.outputs["Image"])
    bypass = timed(max(2, a.repeats))
    link_out(dof.outputs["Image"])
    t_dof = timed(a.repeats)
    res = dict(width=W, height=H, bokeh=a.bokeh, blur_max=dof.blur_max, threshold=a.threshold,
               threads=scene.render.threads, blender=bpy.app.version_string,
               execution_mode=getattr(tree, "execution_mode", None),
               defocus_times=t_dof, bypass_times=bypass)
    if a.out:  # the last result, as an uncompressed 32-bit float OpenEXR file (linear light)
        st = scene.render.image_settings
        st.file_format, st.color_depth, st.exr_codec = "OPEN_EXR", "32", "NONE"
        bpy.data.images["Render Result"].save_render(a.out, scene=scene)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)


main()
