"""The package's import structure: no import cycles, and no import from a lower layer up.

The layers are the ones docs/architecture.md describes. Every ``import`` counts, also the
ones inside functions and under ``TYPE_CHECKING``: a lazy import hides a dependency, it
does not remove it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "deepfake_lab"

#: Top-level package or module -> layer, bottom (0) to top.
LAYERS: dict[str, int] = {}
for _rank, _names in enumerate(
    [
        # shared helpers
        ["", "errors", "registry", "io", "cache", "color", "config", "devices", "hashing"]
        + ["pixels", "runs", "net", "safe_text", "sharded_random"],
        # pure functions of tensors and images
        ["augment", "losses", "metrics"],
        # networks, and loading them
        ["models"],
        # media: faces, datasets, video, provenance, figures
        ["faces", "data", "video", "provenance", "report"],
        # training and sampling
        ["training", "generate", "reconstruct"],
        # pipelines that train and score
        ["evaluation"],
        # entry points
        ["calibrate", "detect", "export", "explain", "onnx_export", "merge"]
        + ["scan_output", "scan_prepare", "scan_shard"],
        ["demo", "serve", "cli", "__main__"],
    ]
):
    for _name in _names:
        LAYERS[_name] = _rank

#: Known upward imports, each with the reason it is still there. An entry that no longer
#: exists fails the test too, so the list only shrinks.
KNOWN_UPWARD = {
    # In-training generator metrics score each checkpoint with the pipeline of `eval gan`
    # (sampling, feature passes, the reference cache); the metrics themselves are defined
    # once, below both, in metrics/registry.py.
    ("deepfake_lab.training.gan_metrics", "deepfake_lab.evaluation.evaluate"),
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    assert top in LAYERS, f"{module}: add its package to LAYERS (and to docs/architecture.md)"
    return LAYERS[top]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_upward_imports() -> None:
    upward = {
        (src, dst)
        for src, targets in _graph().items()
        for dst in targets
        if _layer(dst) > _layer(src)
    }
    assert upward - KNOWN_UPWARD == set(), "imports from a lower layer up"
    assert KNOWN_UPWARD - upward == set(), "fixed: remove these from KNOWN_UPWARD"


@pytest.mark.parametrize("package", sorted(p.name for p in ROOT.iterdir() if p.is_dir()))
def test_every_package_has_a_layer_and_a_docstring(package: str) -> None:
    if package == "__pycache__":
        pytest.skip("not a package")
    init = ROOT / package / "__init__.py"
    assert package in LAYERS
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    # A real docstring says what the package is for, not just its name.
    assert doc and len(doc.split()) >= 5, f"{package}/__init__.py needs a docstring"


def test_imports_inside_functions_count() -> None:
    graph = defaultdict(set, _graph())
    # detect.py scans with detectors that models/detectors/loading.py loads: a real edge.
    assert "deepfake_lab.models.detectors.loading" in graph["deepfake_lab.detect"]
