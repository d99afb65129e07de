"""The layers, enforced on the source (every import statement, including the lazy ones inside
functions): the domain core `iv_pipelines` never imports Dagster or the layers above it;
no two parts of the domain import each other in a cycle; the Triton kernels import nothing of
the domain; resources never import the Dagster layer (`defs/`) or the app. A deliberate
violation is caught (last test)."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ABOVE_THE_DOMAIN = {"dagster", "dagster_k8s", "dagster_postgres", "dagster_docker", "resources", "defs"}
ABOVE_THE_DOMAIN |= {"iv_app"}
ABOVE_RESOURCES = {"defs", "iv_app"}


def unit(module: str) -> str:
    """The part of the domain a module belongs to: `iv_pipelines.sensing.twin` -> `sensing`,
    a top-level module `iv_pipelines.request` -> `request`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(package)"


def check(root: Path) -> list[str]:
    """Every layering violation under `root` (a checkout), one line each."""
    problems = []
    graph: dict[str, set[str]] = {}
    for f in sorted((root / "iv_pipelines").rglob("*.py")):
        mod = ".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for name in _imports_at(f, root):
            top = name.split(".")[0]
            if top in ABOVE_THE_DOMAIN:
                problems.append(f"{mod} imports {name}: the domain core imports nothing above it")
            if top == "iv_pipelines" and len(name.split(".")) > 1:
                a, b = unit(mod), unit(name)
                if a != b:
                    graph.setdefault(a, set()).add(b)
    problems += [f"cycle between domain parts: {' -> '.join(c)}" for c in _cycles(graph)]
    for f in sorted((root / "iv_kernels").rglob("*.py")) if (root / "iv_kernels").is_dir() else []:
        for name in _imports_at(f, root):
            if name.split(".")[0] == "iv_pipelines":
                problems.append(f"{f.relative_to(root)} imports {name}: kernels sit below the domain")
    for f in sorted((root / "resources").rglob("*.py")) if (root / "resources").is_dir() else []:
        for name in _imports_at(f, root):
            if name.split(".")[0] in ABOVE_RESOURCES:
                problems.append(
                    f"{f.relative_to(root)} imports {name}: resources sit below the Dagster layer"
                )
    return problems


def _imports_at(path: Path, root: Path) -> list[str]:
    """Absolute module names imported anywhere in `path` (relative imports resolved)."""
    out = []
    pkg = path.relative_to(root).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg[: len(pkg) - node.level + 1])
                out.append(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                out.append(node.module)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp) + [sorted(comp)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_repository_keeps_its_layers():
    assert check(REPO) == []


@pytest.mark.parametrize(
    "where, code, expect",
    [
        ("iv_pipelines/sensing/bad.py", "import dagster as dg\n", "imports dagster"),
        ("iv_pipelines/ops/bad.py", "def f():\n    from defs.lifecycle import x\n", "imports defs.lifecycle"),
        ("iv_pipelines/sensing/loop.py", "from iv_pipelines.ledger.chain import utid_for\n", "cycle between"),
        ("iv_kernels/bad.py", "from iv_pipelines.scoring.reference import QERO_TAU\n", "kernels sit below"),
        ("resources/bad.py", "from defs.proof import utid\n", "resources sit below"),
    ],
)
def test_a_deliberate_violation_is_caught(tmp_path, where, code, expect):
    import shutil

    for d in ("iv_pipelines", "iv_kernels", "resources"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__", "data"))
    assert check(tmp_path) == []  # the copy is clean
    if where.endswith("loop.py"):  # ledger -> sensing exists nowhere: make the cycle real
        (tmp_path / "iv_pipelines/ledger/back.py").write_text("from iv_pipelines.sensing.twin import Room\n")
    (tmp_path / where).write_text(code)
    assert any(expect in p for p in check(tmp_path)), check(tmp_path)
