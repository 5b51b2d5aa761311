"""The layers point one way (import-linter's contracts in .importlinter) and nothing imports the app."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    r = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "4 kept, 0 broken" in r.stdout


def test_nothing_imports_the_app_entry_point():
    """app.py sits above app_pages (import-linter takes packages only, so this one is checked here)."""
    offenders = []
    for path in [*ROOT.glob("app_pages/*.py"), *ROOT.glob("explorer/*.py"), *ROOT.glob("training/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n == "app" or n.startswith("app.")]
    assert not offenders, offenders


def test_page_scripts_define_no_cached_functions():
    """A page script runs again on every rerun: a st.cache_* decorator in it would read its function's source
    again each time. Shared computations live in app_pages/computed.py (imported once)."""
    modules = {"__init__.py", "common.py", "computed.py", "linked_selection.py"}  # imported, not run as pages
    pages = [p for p in ROOT.glob("app_pages/*.py") if p.name not in modules]
    assert len(pages) >= 6
    offenders = []
    for path in pages:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                for dec in node.decorator_list:
                    text = ast.unparse(dec)
                    if "cache_resource" in text or "cache_data" in text:
                        offenders.append(f"{path.name}: {node.name}")
    assert not offenders, offenders


def test_the_load_tests_modules_do_not_import_each_other():
    """Issue 28's review: classroom.py imported load_test.py, which imports classroom.py (a cycle that works
    only by import order); what both need lives in proctree.py."""
    bench = Path(__file__).resolve().parent.parent / "benchmarks"

    def imported(name: str) -> set[str]:
        tree = ast.parse((bench / f"{name}.py").read_text())
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out |= {a.name.split(".")[-1] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                out.add(node.module.split(".")[-1])
        return out
    assert "load_test" not in imported("classroom")
    assert "classroom" in imported("load_test")  # the class mix is load_test's to run


def test_no_two_modules_import_each_other():
    """Issue 28: a cycle (even a lazy import inside a function, or one for type checking only) hides which
    module is the lower one; the families' code sits under the interface, the measures above it."""
    import grimp
    graph = grimp.build_graph("training", "explorer", "app_pages", cache_dir=None)
    pairs = {tuple(sorted((m, n))) for m in graph.modules for n in graph.find_modules_directly_imported_by(m)
             if m in graph.find_modules_directly_imported_by(n)}
    assert not pairs, pairs
