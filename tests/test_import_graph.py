"""The domain graph is one-way (docs/architecture.md): a domain imports only the domains below it, and the
base (`core`, `extensions`) imports no domain, whether at module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import marketplace

BASE = frozenset({"core", "extensions"})
# Lower rank first; domains of one rank may not import each other.
RANK = {
    "accounts": 1,
    "mentors": 2,
    "scheduling": 3,
    "bookings": 4,
    "payments": 5,
    "notifications": 5,
    "careers": 5,
}
# The app factory, the CLI and the demo seeder wire the domains together: they may import any of them.
COMPOSITION_ROOT = frozenset({"__init__", "cli", "demo"})


def may_import(importer: str, imported: str) -> bool:
    if imported == importer or imported in BASE:
        return True
    if importer in BASE or imported not in RANK:
        return False
    return RANK[imported] < RANK[importer]


def imported_parts(path: Path, root: Path) -> set[tuple[str, int]]:
    """The top-level parts of `marketplace` this file imports (with the line), at any depth of the file."""
    module = path.relative_to(root.parent).with_suffix("").parts
    package = module if path.name == "__init__.py" else module[:-1]
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            names = [f"{target}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == root.name and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def violations(root: Path) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        importer = parts[0]
        if len(parts) == 1 and importer in COMPOSITION_ROOT:
            continue
        for imported, line in sorted(imported_parts(path, root)):
            if (imported in RANK or imported in BASE) and not may_import(importer, imported):
                problems.append(f"{path.relative_to(root.parent)}:{line}: {importer} imports {imported}")
    return problems


def test_no_domain_imports_one_above_or_beside_it_and_core_imports_none() -> None:
    assert violations(Path(marketplace.__file__).parent) == []


def test_the_check_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    root = tmp_path / "marketplace"
    for package in ("core", "mentors", "payments", "careers", "bookings"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "core" / "cache.py").write_text("from marketplace.bookings import models\n")
    (root / "mentors" / "tasks.py").write_text("def refresh():\n    from ..bookings import service\n")
    (root / "payments" / "service.py").write_text("import marketplace.careers.models\n")
    (root / "bookings" / "service.py").write_text("from marketplace.mentors import calendar\n")

    assert violations(root) == [
        "marketplace/core/cache.py:1: core imports bookings",
        "marketplace/mentors/tasks.py:2: mentors imports bookings",
        "marketplace/payments/service.py:1: payments imports careers",
    ]
