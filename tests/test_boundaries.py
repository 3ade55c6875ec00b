"""The layers (ARCHITECTURE.md): core/ and evals/ stay headless (never textual or console/), and core/
never imports evals/ (benchmarks plug in through core.benchmarks' entry points)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("textual", "console")


def imported_modules(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_no_console_or_textual_imports_in_core_and_evals():
    bad = []
    for pkg in ("core", "evals"):
        for f in (ROOT / pkg).rglob("*.py"):
            for line, mod in imported_modules(f):
                if mod.split(".")[0] in FORBIDDEN:
                    bad.append(f"{f.relative_to(ROOT)}:{line}: imports {mod}")
    assert not bad, "\n".join(bad)


def test_core_never_imports_evals():
    bad = [f"{f.relative_to(ROOT)}:{line}: imports {mod}"
           for f in (ROOT / "core").rglob("*.py") for line, mod in imported_modules(f)
           if mod.split(".")[0] == "evals"]
    assert not bad, "\n".join(bad)


def test_core_loads_no_evals_module_until_a_benchmark_is_used():
    """Importing all of core (the engine, every stage, the daemon) loads nothing from evals/; the
    benchmarks come in through the registry, by entry point."""
    mods = sorted(".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for f in (ROOT / "core").rglob("*.py") if f.name != "vllm.py")
    code = ("import importlib, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] == 'evals']\n"
            "assert not bad, bad\n"
            "from core.benchmarks import registry\n"
            "print(sorted(registry()))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "['acebench', 'bfcl']"


def test_importing_every_core_and_evals_module_loads_no_console():
    mods = sorted(
        ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for pkg in ("core", "evals") for f in (ROOT / pkg).rglob("*.py")
        if f.name != "vllm.py"  # needs the gpu extra; checked by its own test
    )
    code = ("import importlib, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'console')]\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def test_no_eval_or_exec_calls_in_product_code():
    bad = []
    for pkg in ("core", "evals", "console"):
        for f in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
                    bad.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad
