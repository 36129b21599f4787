"""The Markdown documentation matches the code: every public name has an API entry, every CLI
option is documented, the README's test command is the one CI runs, and relative links resolve."""
import re
from pathlib import Path

import pytest

import synthdof
from synthdof.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def read(p):
    assert p.is_file(), f"{p} is missing"
    return p.read_text(encoding="utf-8")


def test_every_public_name_has_an_api_entry():
    api = read(DOCS / "api.md")
    headings = re.findall(r"^#{2,4} .*$", api, flags=re.M)
    missing = [n for n in synthdof.__all__
               if not any(re.search(rf"`{re.escape(n)}[(`]", h) for h in headings)]
    assert not missing, f"docs/api.md has no heading for: {missing}"


def test_reference_page_documents_every_public_name():
    """docs/reference.md (the site's API reference, rendered from the docstrings) has every name."""
    text = read(DOCS / "reference.md")
    missing = [n for n in synthdof.__all__
               if not re.search(rf"^\.\. auto(function|class):: synthdof\.{n}$", text, re.M)]
    assert not missing, f"docs/reference.md does not document: {missing}"


def test_every_cli_option_is_documented():
    cli = read(DOCS / "cli.md")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = []
    for name, p in sub.choices.items():
        if f"## {name}" not in cli:
            missing.append(name)
        for act in p._actions:
            for opt in act.option_strings:
                if opt.startswith("--") and opt != "--help" and opt not in cli:
                    missing.append(f"{name} {opt}")
    assert not missing, f"docs/cli.md does not mention: {missing}"


def test_readme_commands():
    readme = read(ROOT / "README.md")
    assert 'pip install ".[io]" && python -m synthdof demo --out demo.png' in readme
    run = read(ROOT / ".ci" / "run")
    ci_cmd = [ln.strip() for ln in run.splitlines() if ln.strip().startswith("pip install")]
    assert len(ci_cmd) == 2, ".ci/run installs for the tests, then for the site"
    assert ci_cmd[0] in readme, "the README's test command differs from the one CI runs"
    assert ci_cmd[1] in readme, "the README's site command differs from the one CI runs"


@pytest.mark.parametrize("doc", ["README.md"] + sorted(f"docs/{p.name}" for p in DOCS.glob("*.md")))
def test_relative_links_resolve(doc):
    path = ROOT / doc
    text = read(path)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        file = (path.parent / target.split("#", 1)[0]).resolve()
        if ROOT.resolve() not in file.parents and file != ROOT.resolve():
            broken.append(f"{target} (outside the repository)")
        elif not file.exists():
            broken.append(target)
    assert not broken, f"{doc}: links to missing files {broken}"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    """The README's Python blocks run as written on files made from the sample scene."""
    pytest.importorskip("PIL.Image")
    import numpy as np

    blocks = re.findall(r"```python\n(.*?)```", read(ROOT / "README.md"), flags=re.S)
    assert blocks
    s = synthdof.load_sample()
    monkeypatch.chdir(tmp_path)
    synthdof.write_image("portrait.jpg", s["image"])
    synthdof.write_image("depth.png", np.round(s["depth"] * 1000).astype(np.uint16))
    synthdof.write_image("person.png", np.dstack([s["image"], np.round(s["matte"] * 255).astype(np.uint8)]))
    inv = 1 / s["depth"]
    synthdof.write_image("midas.png", np.round((inv - inv.min()) / np.ptp(inv) * 65535).astype(np.uint16))
    env = {}
    exec(compile("\n".join(blocks), "README.md", "exec"), env)
    out = synthdof.read_image("bokeh.png")
    assert out.shape == s["image"].shape and out.dtype == np.uint8
    # read_matte took the cut-out's alpha, read_depth the millimetres
    np.testing.assert_allclose(env["matte"], np.round(s["matte"] * 255) / 255, atol=1e-6)
    np.testing.assert_allclose(env["depth"], np.round(s["depth"] * 1000) / 1000, rtol=1e-6)


def test_howto_ground_truth_check_recovers_the_lens(monkeypatch):
    """The how-to's check on the ground truth runs as written and recovers the scene's lens."""
    text = read(DOCS / "howto_real_lens.md")
    import numpy as np

    block = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "load_ground_truth" in b]
    assert len(block) == 1
    monkeypatch.chdir(ROOT)
    env = {"np": np, "synthdof": synthdof, "print": lambda *a, **k: None}
    exec(compile(block[0], "howto_real_lens.md", "exec"), env)
    f, W, s, meta, fit = env["f"], env["W"], env["s"], env["meta"], env["fit"]
    assert f * f * W / (3.7 * fit["K"] * s) == pytest.approx(meta["f_number"], rel=0.10)
    assert 3.7 / fit["focus_disparity"] == pytest.approx(meta["focus_distance_m"], rel=0.05)


def test_code_map_names_existing_files_and_functions():
    """docs/internals.md: every file it names exists, and every function or type in a table row
    appears in one of that row's files (or their headers)."""
    text = read(DOCS / "internals.md")
    paths = set(re.findall(r"`((?:csrc|python|benchmarks)/[\w/.]+)`", text))
    assert len(paths) >= 10
    missing = sorted(p for p in paths if not (ROOT / p).is_file())
    assert not missing, f"docs/internals.md names missing files: {missing}"
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "csrc/" in ln]
    assert len(rows) >= 15
    undefined = []
    for row in rows:
        files = re.findall(r"`(csrc/[\w.]+)`", row)
        source = "".join((ROOT / f).read_text(encoding="utf-8") for f in files)
        if any(f.endswith(".c") for f in files):  # a .c file's own header
            source += "".join((ROOT / f[:-2]).with_suffix(".h").read_text(encoding="utf-8")
                              for f in files if f.endswith(".c") and (ROOT / f[:-2]).with_suffix(".h").is_file())
        for name in re.findall(r"`([a-z_][a-z0-9_]*)`", row):
            if not re.search(rf"\b{name}\b", source):
                undefined.append((files, name))
    assert not undefined, f"docs/internals.md names functions not in their files: {undefined}"
