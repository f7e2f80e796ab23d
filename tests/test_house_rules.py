"""House rules for imports, checked by reading the source with `ast` (nothing is imported).

Folders map to one import name (pyproject's package-dir): `appealflow/` is `appealflow`, `models/` is
`appealflow.models` (the wings; `models/storage/migrations/versions/` is skipped), `api/`, `flows/`, `workers/`
and `notifications/` are `appealflow.<folder>`. Adapters: those four and everything else under `appealflow/`
(`cli`, `runtime`, `metrics`, ...) but the ground floor anyone may import: `settings`, `logs`, `redis_url`.

1. A wing imports no adapter and no transport library (fastapi, starlette, prefect, rq, apprise, httpx,
   argparse, uvicorn), not even inside a function.
2. An adapter imports wings and the ground floor; another adapter only through that adapter's package itself
   (`appealflow.workers`, never `appealflow.workers.queues`), unless the crossing is in ALLOWED_CROSSINGS.
   `appealflow.cli` and `appealflow.runtime` are the composition root and may import any adapter.
3. No import cycles among appealflow modules, counting module-level imports outside `if TYPE_CHECKING:`;
   `from package import name` is an edge to the package and, when `name` is a submodule, to it as well.
4. `appealflow.settings` imports no domain code: nothing from the wings, nor any adapter.

Rules 1, 2 and 4 count every import, in functions and under TYPE_CHECKING too. `violations(root)` returns the
findings per rule, so a script can run the rules on another copy of the tree.
"""

import ast
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).parents[1]
FOLDERS = {folder: f"appealflow.{folder}" for folder in ("models", "api", "flows", "workers", "notifications")}
FOLDERS["appealflow"] = "appealflow"
SKIPPED = "models/storage/migrations/versions/"
GROUND = {"settings", "logs", "redis_url"}
TRANSPORTS = {"fastapi", "starlette", "prefect", "rq", "apprise", "httpx", "argparse", "uvicorn"}
COMPOSITION_ROOT = {"cli", "runtime"}

# Crossings between adapters that are public entry points: (importer prefix, imported module). Say why for each.
ALLOWED_CROSSINGS: set[tuple[str, str]] = {
    # The queues' names and the wake-up after a commit: the one contract between whoever commits work
    # (the API, the sweep) or counts it (/metrics) and the workers that take it.
    ("appealflow.api", "appealflow.workers.queues"),
    ("appealflow.flows", "appealflow.workers.queues"),
    ("appealflow.metrics", "appealflow.workers.queues"),
    # An RQ job is how a flow run or a delivery pass is started: the jobs module runs their entry points.
    ("appealflow.workers.jobs", "appealflow.flows.dispatch"),
    ("appealflow.workers.jobs", "appealflow.notifications.delivery"),
    ("appealflow.workers.jobs", "appealflow.notifications.sending"),
}


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the import name `appealflow`."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            if not path.relative_to(root).as_posix().startswith(SKIPPED):
                parts = [package, *path.relative_to(root / folder).with_suffix("").parts]
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(nodes: Iterable[ast.AST], top: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Each import statement, and whether it runs as the module loads (not in a function, nor TYPE_CHECKING)."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, top
        elif isinstance(node, ast.If) and ast.unparse(node.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}:
            yield from _imports(node.body, False)
            yield from _imports(node.orelse, top)
        else:
            in_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            yield from _imports(ast.iter_child_nodes(node), top and not in_function)


def _scan(root: Path) -> tuple[set[tuple[str, str]], dict[str, set[str]]]:
    """All (module, imported name) pairs, and the graph of module-level imports among appealflow modules."""
    modules = _modules(root)
    pairs: set[tuple[str, str]] = set()
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node, top in _imports(ast.parse(path.read_text(encoding="utf-8")).body, True):
            if isinstance(node, ast.Import):
                bases, targets = [], [alias.name for alias in node.names]
            else:  # `from a.b import c`: the module a.b.c when there is one, else a.b
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: package.count(".") + 2 - node.level]
                    base = ".".join([*parent, base] if base else parent)
                bases = [base]
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            pairs.update((module, target) for target in targets)
            if top:  # never `module` itself: a package's __init__ importing its own submodules
                graph[module].update(t for t in bases + targets if t in modules and t != module)
    return pairs, graph


def _adapter(name: str) -> str | None:
    """The adapter a module is in (`api`, `cli`, `metrics`, ...), or None for wings, ground floor and others."""
    parts = [*name.split("."), ""]
    return parts[1] if parts[0] == "appealflow" and parts[1] not in GROUND | {"models", ""} else None


def _in_wings(name: str) -> bool:
    return (name + ".").startswith("appealflow.models.")


def _crosses(importer: str, imported: str) -> bool:
    mine, theirs = _adapter(importer), _adapter(imported)
    if mine in COMPOSITION_ROOT | {None} or theirs in {mine, None} or imported == f"appealflow.{theirs}":
        return False
    return not any(imported == to and (importer + ".").startswith(by + ".") for by, to in ALLOWED_CROSSINGS)


RULES: dict[str, Callable[[str, str], bool]] = {
    "wings": lambda m, t: _in_wings(m) and (_adapter(t) is not None or t.split(".")[0] in TRANSPORTS),
    "adapters": _crosses,
    "settings": lambda m, t: m == "appealflow.settings" and (_in_wings(t) or _adapter(t) is not None),
}


def _cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components of more than one module: modules that reach each other."""
    reach: dict[str, set[str]] = {}
    for start in graph:  # an iterative depth-first search from each module
        seen: set[str] = set()
        todo = [start]
        while todo:
            todo.extend(graph[todo.pop()] - seen)
            seen.update(todo)
        reach[start] = seen
    return sorted({tuple(sorted(m for m in reach[n] if n in reach[m])) for n in graph if n in reach[n]})


def violations(root: Path) -> dict[str, list[str]]:
    """Every breach of the four rules in the tree at `root`, per rule, as readable lines."""
    pairs, graph = _scan(root)
    found = {rule: [f"{m} imports {t}" for m, t in sorted(pairs) if breaks(m, t)] for rule, breaks in RULES.items()}
    found["cycles"] = [f"cycle of {len(c)}: {', '.join(c)}" for c in _cycles(graph)]
    return found


@cache
def _here() -> dict[str, list[str]]:
    return violations(ROOT)


def _check(rule: str, title: str) -> None:
    found = _here()[rule]
    assert not found, f"{title} ({len(found)}):\n  " + "\n  ".join(found)


def test_wings_import_no_adapter_and_no_transport() -> None:
    _check("wings", "wing modules importing an adapter or a transport library")


def test_adapters_cross_only_through_packages() -> None:
    _check("adapters", "adapters importing another adapter's internals")


def test_no_import_cycles() -> None:
    _check("cycles", "import cycles among module-level imports")


def test_settings_import_no_domain_code() -> None:
    _check("settings", "settings importing wings or adapters")
