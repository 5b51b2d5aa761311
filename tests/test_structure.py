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
    assert "3 kept, 0 broken" in r.stdout


def test_nothing_imports_the_app_entry_point():
    """app.py sits above app_pages (import-linter takes packages only, so this one is checked here)."""
    offenders = []
    for path in [*ROOT.glob("app_pages/*.py"), *ROOT.glob("explorer/*.py"), *ROOT.glob("training/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n == "app" or n.startswith("app.")]
    assert not offenders, offenders
