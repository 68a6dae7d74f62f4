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


PRODUCT = [ROOT / "__main__.py", *python_files("components"), *python_files("settings"), *python_files("policies")]


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_product_code_uses_no_private_pulumi_api(path):
    """Private SDK names (`pulumi.runtime.sync_await._sync_await` was one) change without notice."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0].startswith("pulumi"):
            assert not any(alias.name.startswith("_") for alias in node.names), (node.module, path)
            assert not any(part.startswith("_") for part in node.module.split(".")), (node.module, path)


def test_dependency_floors_have_the_features_the_program_uses():
    requirements = (ROOT / "requirements.txt").read_text()
    # components/host/docker_host.py passes connection.host_key, added in pulumi-command 1.1.
    assert "pulumi-command>=1.1," in requirements
    assert "host_key=" in (ROOT / "components" / "host" / "docker_host.py").read_text()
