"""The notebooks run from top to bottom on a fresh kernel (any cell error fails the test; the
notebooks assert their own claims), and are stored without outputs. Each executed notebook is kept
for the documentation site (docs/executed_notebooks.py), which renders it instead of executing the
notebook a second time."""
import importlib.util
import json
from pathlib import Path

import pytest

import synthdof

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("executed_notebooks", ROOT / "docs" / "executed_notebooks.py")
executed_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(executed_notebooks)


def test_notebooks_present():
    assert NOTEBOOKS == ["01_quickstart.ipynb", "02_ground_truth.ipynb", "03_dataset_generation.ipynb",
                         "04_realistic_inputs.ipynb"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_without_outputs(name):
    nb = json.loads((NB_DIR / name).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
                f"{name}: strip the outputs before committing"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    if name.startswith("03"):
        pytest.importorskip("dask.distributed")
    if name.startswith("02") and not all(hasattr(synthdof, f) for f in ("compare", "diagnose")):
        pytest.skip("synthdof.compare / synthdof.diagnose not in this build")
    nb = nbformat.read(NB_DIR / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NB_DIR)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                  for o in c.get("outputs", []))
    assert figures >= (1 if name.startswith("03") else 2)
    executed_notebooks.keep(nb, NB_DIR / name)
    assert executed_notebooks.kept(NB_DIR / name) is not None


def test_kept_copy_only_for_the_same_notebook_and_synthdof(tmp_path, monkeypatch):
    """The site renders a kept executed copy only while neither the notebook nor any file of the
    installed package has changed since it was executed."""
    nbformat = pytest.importorskip("nbformat")
    monkeypatch.setattr(executed_notebooks, "DIR", tmp_path / "kept")
    package = tmp_path / "synthdof"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "_core.so").write_bytes(b"\x00\x01")
    monkeypatch.setattr(executed_notebooks.synthdof, "__file__", str(package / "__init__.py"))
    source = tmp_path / "n.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(nb, source)
    assert executed_notebooks.kept(source) is None
    executed_notebooks.keep(nb, source)
    assert executed_notebooks.kept(source) == tmp_path / "kept" / "n.ipynb"
    (package / "_core.so").write_bytes(b"\x00\x02")
    assert executed_notebooks.kept(source) is None
    (package / "_core.so").write_bytes(b"\x00\x01")
    assert executed_notebooks.kept(source) is not None
    nb.cells[0].source = "1 + 2"
    nbformat.write(nb, source)
    assert executed_notebooks.kept(source) is None
