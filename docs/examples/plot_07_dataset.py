"""
Generating a dataset
====================

``synthdof.run_batch`` renders every input of a config with ``samples_per_input`` lens settings
drawn from seeded generators (the same config gives the same images), writes one image per
sample and one JSON record per image with the lens, the focus it resolved and the CoC range.
A run that is interrupted resumes where it stopped; ``workers=`` runs it on a Dask cluster. The
same config runs from the command line: ``synthdof batch config.json -o renders/``.
"""
import json
import os
import tempfile

import matplotlib.pyplot as plt

import synthdof

work = tempfile.mkdtemp(prefix="synthdof-dataset-")
config = {
    "inputs": [{"name": "portrait", "sample": True}],   # the sample scene shipped with the package
    "samples_per_input": 6,
    "seed": 2024,
    "lens": {
        "focal_length_mm": [70, 135],                   # uniform in [70, 135]
        "f_number": {"log_uniform": [1.2, 4.0]},
        "focus": "auto",                                # on the subject (the matte)
        "blades": {"choice": [0, 5, 6, 8]},
        "rotation": [0.0, 1.0],
    },
    "output": {"format": "png"},
}
summary = synthdof.run_batch(config, os.path.join(work, "renders"), progress=False)
print({k: v for k, v in summary.items() if k != "outdir"})
with open(os.path.join(work, "renders", "metadata.jsonl")) as f:
    records = [json.loads(line) for line in f]
print(json.dumps(records[0], indent=1)[:900])

# %%
# The six samples and the parameters each record holds.

fig, ax = plt.subplots(2, 3, figsize=(12, 5.4))
for a, r in zip(ax.flat, records):
    L = r["lens"]
    a.imshow(synthdof.read_image(os.path.join(work, "renders", r["output"])))
    shape = "circle" if r["aperture"]["blades"] == 0 else f"{r['aperture']['blades']} blades"
    a.set_title(f"{L['focal_length_mm']:.0f} mm f/{L['f_number']:.1f}, {shape}\n"
                f"CoC {r['coc']['min']:.1f} to {r['coc']['max']:.1f} px", fontsize=9)
    a.axis("off")
fig.tight_layout()
