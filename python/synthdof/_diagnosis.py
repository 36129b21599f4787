"""The result of diagnose(): the Diagnosis object, its text report and its notebook table, and
the failure modes' names, thresholds and descriptions."""
import base64
import html
import io

import numpy as np

from ._color import linear_to_srgb

MODES = ("halo", "gaussian_look", "wrong_subject", "foreground_bleed", "similar_depth")

# A mode is flagged when its score reaches its threshold, chosen on 75 generated calibration
# scenes and their faulty renders; the measures since calibrated on 123 and checked on 40 held-out
# ones (benchmarks/diagnostics_calibration.py; the rule and the tables are in docs/diagnostics.md).
THRESHOLDS = {
    "halo": 0.45,
    "gaussian_look": 0.5,
    "wrong_subject": 0.45,
    "foreground_bleed": 0.5,
    "similar_depth": 0.9,
}

DESCRIPTIONS = {
    "halo": "edge halo at the subject silhouette: input detail or subject colour left in the blur "
            "just outside it, or the subject's edge blurred just inside it",
    "gaussian_look": "flat, shapeless blur: highlights that should become hard-edged disks of the "
                     "CoC's size keeping their light come out as dim, soft smudges",
    "wrong_subject": "the focal plane is not on the matted subject (lens or render), or the matte "
                     "and the depth disagree on what is near",
    "foreground_bleed": "content nearer than the focal plane left sharp, its blur missing over the "
                        "subject, or in-focus content outside the subject blurred",
    "similar_depth": "subject and background too close in depth (or in blur) to separate convincingly",
}


class Diagnosis:
    """What diagnose() found.

    report() gives a plain-text summary; in Jupyter the object shows as a table with the maps
    drawn over the image (thumbnails need matplotlib).

    Attributes
    ----------
    scores : dict
        {mode: float in [0, 1]} for every mode the inputs allow judging (0 = no sign of the
        failure, 1 = severe).
    flags : set
        The modes whose score reached thresholds[mode].
    thresholds : dict
        {mode: float}, THRESHOLDS.
    maps : dict
        {mode: (H, W) float32 in [0, 1]} locating each judged mode.
    details : dict
        {mode: dict} the sub-measures behind each score.
    skipped : dict
        {mode: reason} for the modes not judged.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> img = np.random.default_rng(0).random((40, 40, 3), dtype=np.float32)
    >>> d = synthdof.diagnose(img, img)          # no matte, no CoC: almost nothing to judge
    >>> sorted(d.skipped)
    ['foreground_bleed', 'gaussian_look', 'halo', 'similar_depth', 'wrong_subject']
    >>> d.flags
    set()
    """

    def __init__(self, scores, maps, details, skipped, image):
        self.scores = scores
        self.maps = maps
        self.details = details
        self.skipped = skipped
        self.thresholds = dict(THRESHOLDS)
        self.flags = {k for k, v in scores.items() if v >= THRESHOLDS[k]}
        self._image = image

    def __repr__(self):
        s = ", ".join(f"{k}={v:.2f}" for k, v in self.scores.items())
        return f"Diagnosis({s}; flags={sorted(self.flags)})"

    def report(self):
        """Plain-text table: each mode's score, threshold, verdict and sub-measures (or why it
        was not judged), then what each flagged mode means.

        Returns
        -------
        str
        """
        lines = [f"{'mode':18s} {'score':>6s} {'thresh':>6s}  verdict   details"]
        for k in MODES:
            if k in self.scores:
                det = ", ".join(f"{n}={_fmt(v)}" for n, v in self.details.get(k, {}).items())
                verdict = "FLAGGED" if k in self.flags else "ok"
                lines.append(f"{k:18s} {self.scores[k]:6.2f} {THRESHOLDS[k]:6.2f}  {verdict:8s}  {det}")
            else:
                lines.append(f"{k:18s} {'-':>6s} {THRESHOLDS[k]:6.2f}  {'n/a':8s}  "
                             f"not judged: {self.skipped.get(k, '')}")
        for k in MODES:
            if k in self.flags:
                lines.append(f"{k}: {DESCRIPTIONS[k]}")
        return "\n".join(lines)

    def _repr_html_(self):
        rows = []
        for k in MODES:
            thumb = ""
            if k in self.maps:
                png = _overlay_png(self._image, self.maps[k])
                if png is not None:
                    thumb = f'<img src="data:image/png;base64,{png}" style="max-width:240px">'
            if k in self.scores:
                det = ", ".join(f"{n}={_fmt(v)}" for n, v in self.details.get(k, {}).items())
                verdict = "<b>FLAGGED</b>" if k in self.flags else "ok"
                score = f"{self.scores[k]:.2f}"
            else:
                det, verdict, score = self.skipped.get(k, ""), "n/a", "&ndash;"
            rows.append(f"<tr><td><code>{k}</code></td><td>{score}</td><td>{THRESHOLDS[k]:.2f}</td>"
                        f"<td>{verdict}</td><td>{html.escape(det)}"
                        f"</td><td>{thumb}</td></tr>")
        head = ("<tr><th>mode</th><th>score</th><th>threshold</th><th>verdict</th><th>details</th>"
                "<th>where</th></tr>")
        return f"<table>{head}{''.join(rows)}</table>"


def _fmt(v):
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.3g}"


def _overlay_png(image, m, max_side=240):
    """The map in red over a dimmed copy of the image, as base64 PNG (None without matplotlib)."""
    try:
        import matplotlib.image as mpimg
    except ImportError:
        return None
    H, W = m.shape
    step = max(1, int(np.ceil(max(H, W) / max_side)))
    base = linear_to_srgb(image[::step, ::step]) * 0.6
    mm = np.clip(m[::step, ::step], 0.0, 1.0)[:, :, None]
    red = np.array([1.0, 0.1, 0.1], np.float32)
    rgb = np.clip(base * (1.0 - mm) + red * mm, 0.0, 1.0)
    buf = io.BytesIO()
    mpimg.imsave(buf, rgb, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")
