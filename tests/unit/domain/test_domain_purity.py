"""domain/ imports only the standard library, eventsourcing.domain and itself."""

import ast
import sys
from pathlib import Path

import pytest

DOMAIN_DIR = Path(__file__).resolve().parents[3] / "domain"
ALLOWED_THIRD_PARTY = {"eventsourcing.domain"}


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            modules.append(node.module or "")
    return modules


def _is_allowed(module: str) -> bool:
    top_level = module.split(".", maxsplit=1)[0]
    return (
        top_level in sys.stdlib_module_names
        or top_level == "domain"
        or module in ALLOWED_THIRD_PARTY
    )


@pytest.mark.parametrize("path", sorted(DOMAIN_DIR.glob("*.py")), ids=lambda path: path.name)
def test_domain_module_imports_only_the_stdlib_and_eventsourcing_domain(path: Path) -> None:
    forbidden = [module for module in _imported_modules(path) if not _is_allowed(module)]

    assert forbidden == []
