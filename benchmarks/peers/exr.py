"""Minimal OpenEXR writer (uncompressed, 32-bit float scan lines) for handing float images to the
peer programs without extra Python packages. Written from the OpenEXR file-layout description:
magic + version, a header of typed attributes, a scan-line offset table, then one block per
scan line (y, byte count, each channel's row in alphabetical channel order)."""
import struct

import numpy as np

_FLOAT = 2  # OpenEXR pixel type FLOAT


def _attr(name, kind, payload):
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(payload)) + payload


def write_exr(path, img):
    """img: (H, W) -> channel Y; (H, W, 3) -> R, G, B; (H, W, 4) -> R, G, B, A. float32, linear."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        names, planes = ["Y"], [a]
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        names = ["R", "G", "B", "A"][:a.shape[2]]
        planes = [a[:, :, i] for i in range(a.shape[2])]
    else:
        raise ValueError(f"img: expected (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    order = sorted(range(len(names)), key=lambda i: names[i])
    H, W = a.shape[:2]
    chlist = b"".join(names[i].encode() + b"\0" + struct.pack("<iB3xii", _FLOAT, 0, 1, 1) for i in order) + b"\0"
    box = struct.pack("<iiii", 0, 0, W - 1, H - 1)
    header = (struct.pack("<ii", 20000630, 2)
              + _attr("channels", "chlist", chlist)
              + _attr("compression", "compression", b"\0")
              + _attr("dataWindow", "box2i", box)
              + _attr("displayWindow", "box2i", box)
              + _attr("lineOrder", "lineOrder", b"\0")
              + _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
              + _attr("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
              + _attr("screenWindowWidth", "float", struct.pack("<f", 1.0))
              + b"\0")
    nc = len(names)
    row_bytes = 4 * nc * W
    block = 8 + row_bytes
    first = len(header) + 8 * H
    offsets = (first + block * np.arange(H, dtype=np.uint64)).astype("<u8")
    blocks = np.empty((H, 2 + nc * W), dtype="<f4")
    ints = blocks.view("<i4")
    ints[:, 0] = np.arange(H)
    ints[:, 1] = row_bytes
    for k, i in enumerate(order):
        blocks[:, 2 + k * W:2 + (k + 1) * W] = planes[i]
    with open(path, "wb") as f:
        f.write(header)
        f.write(offsets.tobytes())
        f.write(blocks.tobytes())


def read_exr(path):
    """Read an uncompressed scan-line OpenEXR file (FLOAT or HALF channels) written by this
    module or by Blender with codec NONE. Returns {channel name: (H, W) float32}."""
    with open(path, "rb") as f:
        raw = f.read()
    magic, version = struct.unpack("<ii", raw[:8])
    if magic != 20000630 or version & 0x200:  # 0x200: tiled
        raise ValueError(f"{path}: not a scan-line OpenEXR file")
    pos, attrs = 8, {}
    while raw[pos] != 0:
        end = raw.index(b"\0", pos)
        name = raw[pos:end].decode()
        tend = raw.index(b"\0", end + 1)
        kind = raw[end + 1:tend].decode()
        size = struct.unpack("<i", raw[tend + 1:tend + 5])[0]
        attrs[name] = (kind, raw[tend + 5:tend + 5 + size])
        pos = tend + 5 + size
    pos += 1
    if attrs["compression"][1] != b"\0":
        raise ValueError(f"{path}: compressed OpenEXR is not supported (write it with codec NONE)")
    chans, cl = [], attrs["channels"][1]
    p = 0
    while cl[p] != 0:
        e = cl.index(b"\0", p)
        ptype = struct.unpack("<i", cl[e + 1:e + 5])[0]
        chans.append((cl[p:e].decode(), ptype))
        p = e + 17
    x0, y0, x1, y1 = struct.unpack("<iiii", attrs["dataWindow"][1])
    W, H = x1 - x0 + 1, y1 - y0 + 1
    offsets = np.frombuffer(raw, "<u8", H, pos)
    dtypes = {1: np.dtype("<f2"), 2: np.dtype("<f4")}
    out = {name: np.empty((H, W), np.float32) for name, _ in chans}
    for off in offsets:
        y = struct.unpack("<i", raw[off:off + 4])[0] - y0
        q = int(off) + 8
        for name, ptype in chans:
            dt = dtypes[ptype]
            out[name][y] = np.frombuffer(raw, dt, W, q)
            q += W * dt.itemsize
    return out
