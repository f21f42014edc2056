"""The product package stands alone: nothing in ``payout_assets`` imports the stand-ins, so the
product's runtime paths (the CLI, the code location, the Pipes worker) never load a fake."""

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
