"""The layout is the architecture: settings below components, product code never
importing tests, and every component folder a package that says what it holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", python_files("settings"), ids=lambda p: p.name)
def test_settings_never_import_components(path):
    assert not {m for m in imported_modules(path) if m.split(".")[0] == "components"}


@pytest.mark.parametrize("path", [ROOT / "__main__.py", *python_files("components"), *python_files("settings"),
                                  *python_files("tools"), *python_files("policies")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_product_code_never_imports_tests(path):
    test_modules = {p.stem for p in (ROOT / "tests").glob("*.py")}
    assert not imported_modules(path) & test_modules


def test_every_component_folder_is_a_documented_package():
    folders = [p for p in (ROOT / "components").iterdir() if p.is_dir() and p.name != "__pycache__"
               and any(p.glob("*.py"))]
    assert folders
    for folder in folders:
        init = folder / "__init__.py"
        assert init.exists(), f"{folder.name}/ has no __init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{folder.name}/__init__.py says nothing"
        assert f"{folder.name}/" in ast.get_docstring(ast.parse((ROOT / "components" / "__init__.py").read_text()))
