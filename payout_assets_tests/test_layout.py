"""The product package stands alone: nothing in ``payout_assets`` imports the stand-ins, so the
product's runtime paths (the CLI, the code location) never load a fake."""

from __future__ import annotations

import ast
from pathlib import Path

import payout_assets

PRODUCT = Path(payout_assets.__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_product_never_imports_the_stand_ins() -> None:
    offenders = {
        str(path.relative_to(PRODUCT.parent)): sorted(
            m for m in _imported_modules(path) if m.split(".")[0] == "payout_standins"
        )
        for path in sorted(PRODUCT.rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert len(offenders) > 30  # the scan saw the package


MAX_MODULE_LINES = 500


def test_no_module_is_longer_than_a_reader_can_hold() -> None:
    """Every Python module of the repository (product, stand-ins, tests, benchmark) stays at or
    under MAX_MODULE_LINES: a longer one is two modules that have not been named yet."""
    root = PRODUCT.parent
    rooms = ["payout_assets", "payout_standins", "payout_assets_tests", "bench"]
    modules = [path for room in rooms for path in sorted((root / room).rglob("*.py"))]
    lengths = {str(path.relative_to(root)): len(path.read_text().splitlines()) for path in modules}
    assert {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES} == {}
    assert len(lengths) > 80  # the scan saw the repository


def test_every_sql_file_is_read_by_the_product() -> None:
    """A file in ``sql/`` that no product module names is dead SQL a reader would still study."""
    root = PRODUCT.parent
    source = "\n".join(path.read_text() for path in sorted(PRODUCT.rglob("*.py")))
    files = sorted(str(path.relative_to(root / "sql")) for path in (root / "sql").rglob("*.sql"))
    assert [name for name in files if name not in source] == []
    assert len(files) > 20  # the scan saw the folder
