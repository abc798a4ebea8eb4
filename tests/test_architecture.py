"""Imports point one way: math → conditioning → evaluation → networks and data → runs → the command line.

Each module of the package is given a layer below; the test walks every module's imports with `ast` and fails on an
import of a higher layer, naming the file, the line and both layers. A new module must be placed here.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "scoresde"

LAYERS = ["math", "conditioning", "evaluation", "networks and data", "runs", "application"]
# module (dotted, relative to scoresde; a package covers its submodules) -> layer
MODULES = {
    "_utils": "math", "_args": "application", "score": "math", "schedules": "math", "sde": "math",
    "parameterization": "math", "losses": "math", "sampling": "math", "likelihood": "math", "vlb": "math",
    "vlb_loss": "math", "variances": "math", "respace": "math", "analytic": "math", "prior": "math", "priorgrad": "math", "preconditioning": "math",
    "resize": "math", "discrete": "math", "discrete.model": "networks and data",
    "guidance": "conditioning", "inverse": "conditioning", "sr3": "conditioning",
    "metrics": "evaluation", "features": "evaluation", "inception": "evaluation", "fid": "evaluation",
    "shards": "evaluation", "distributed": "math",
    "models": "networks and data", "data": "networks and data", "diffusers_interop": "networks and data",
    "plots": "evaluation", "families": "runs", "importers": "runs",
    "config": "runs", "builders": "runs", "checkpoint": "runs", "posthoc_ema": "runs", "run": "runs", "training": "runs", "compare": "runs",
    "cli": "application", "cli_compare": "application", "cli_restore": "application", "cli_fid": "application", "__main__": "application", "__init__": "application",
}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" and len(rel.parts) > 1 else rel.parts
    return ".".join(parts)


def layer_of(dotted: str) -> str | None:
    """The layer of scoresde.<dotted>: its own entry, or its package's."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in MODULES:
            return MODULES[".".join(parts[:k])]
    return None


def imports(path: Path, dotted: str):
    """(line, target module relative to scoresde) for every scoresde import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    here = dotted.split(".") if dotted else []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("scoresde."):
                    yield node.lineno, alias.name[len("scoresde."):]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("scoresde"):
                    base = node.module[len("scoresde."):] if node.module != "scoresde" else ""
                else:
                    continue
            else:
                anchor = here if is_package else here[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}" if base else alias.name
                yield node.lineno, target if layer_of(target) else base


def violations(package: Path) -> list[str]:
    """Every import of a higher layer in the package at `package` (a package's __init__ may re-export its own
    submodules)."""
    wrong = []
    for path in sorted(package.rglob("*.py")):
        dotted = module_name(path, package)
        mine = layer_of(dotted)
        if dotted == "__init__" or mine == "application":
            continue  # the public API and the CLI may import anything
        for line, target in imports(path, dotted):
            theirs = layer_of(target)
            own_submodule = path.name == "__init__.py" and target.startswith(dotted + ".")
            if theirs is not None and not own_submodule and LAYERS.index(theirs) > LAYERS.index(mine):
                wrong.append(f"{path.relative_to(package.parent)}:{line} ({mine}) imports scoresde.{target} ({theirs})")
    return wrong


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in sorted(PACKAGE.rglob("*.py")) if layer_of(module_name(p)) is None]
    assert not missing, f"place these modules in a layer in tests/test_architecture.py: {missing}"


def test_imports_point_from_the_math_to_the_command_line():
    wrong = violations(PACKAGE)
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_walk_reports_imports_against_the_layers(tmp_path):
    """The checker itself, on a fake package: relative, absolute and from-package imports of a higher layer are
    reported with their lines; imports of the same or a lower layer are not."""
    package = tmp_path / "scoresde"
    (package / "sampling").mkdir(parents=True)
    (package / "__init__.py").write_text("from .cli import main\n")
    (package / "sampling" / "__init__.py").write_text("")
    (package / "sampling" / "bad.py").write_text(
        "from ..run import load_run\nimport scoresde.cli\nfrom scoresde import compare\nfrom .. import sde, score\n"
        "from ..guidance import guided\n")
    assert violations(package) == [
        "scoresde/sampling/bad.py:1 (math) imports scoresde.run.load_run (runs)",
        "scoresde/sampling/bad.py:2 (math) imports scoresde.cli (application)",
        "scoresde/sampling/bad.py:3 (math) imports scoresde.compare (runs)",
        "scoresde/sampling/bad.py:5 (math) imports scoresde.guidance.guided (conditioning)"]
