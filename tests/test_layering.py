"""The package's layering: analysis and reporting never need torch, the workflow's DAG is built without it,
and no two packages import each other."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fastexit_bench"
# A package may import from the ones after it in its row's list, and never the other way round.
LOWER = {
    "cli": {
        "experiments",
        "reporting",
        "serving",
        "runtime",
        "training",
        "analysis",
        "models",
        "data",
        "top",
    },
    "experiments": {"reporting", "training", "runtime", "analysis", "models", "data", "top"},
    "reporting": {"serving", "runtime", "analysis", "training", "data", "top"},
    "serving": {"runtime", "analysis", "models", "data", "top"},
    "runtime": {"analysis", "models", "data", "top"},
    "training": {"runtime", "analysis", "models", "data", "top"},
    "analysis": {"top"},
    "models": {"analysis", "data", "top"},
    "data": {"top"},
    "top": {"top"},
}


def _imports_without(modules: list[str], heavy=("torch", "transformers")) -> list[str]:
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in done.stdout.strip().split(",") if m]


def test_analysis_and_reporting_run_without_torch():
    modules = [
        f"fastexit_bench.{p.parent.name}.{p.stem}"
        for folder in ("analysis", "reporting")
        for p in sorted((PACKAGE / folder).glob("*.py"))
        if p.stem != "__init__"
    ]
    assert _imports_without(modules) == []


@pytest.mark.parametrize(
    "modules",
    [
        [
            "fastexit_bench.data.spec",
            "fastexit_bench.training.recipes",
            "fastexit_bench.errors",
            "fastexit_bench.experiments.settings",
        ],  # common.smk
        ["fastexit_bench.experiments.plan"],  # fastexit-bench plan
        ["fastexit_bench.cli"],  # --help, data ls and friends
    ],
)
def test_workflow_dag_and_cli_parsing_need_no_torch(modules):
    assert _imports_without(modules) == []


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and (PACKAGE / parts[1]).is_dir() else "top"


def test_packages_import_downwards_only():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        source = _group("fastexit_bench." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fastexit_bench"):
                names = (
                    [node.module]
                    if node.module != "fastexit_bench"
                    else [f"fastexit_bench.{a.name}" for a in node.names]
                )
                for name in names:
                    target = _group(name)
                    if target != source and target not in LOWER[source]:
                        wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert wrong == []
