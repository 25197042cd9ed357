"""A plain (non-editable) install carries the zoo configs and the start-up hook."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

#: only stops a process that hangs: a loaded machine is slower, not stuck
HANG_LIMIT = 1800

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_carries_configs_hook_and_type_marker(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=HANG_LIMIT)  # fmt: skip
    (wheel,) = tmp_path.glob("sb3_mario-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"sb3_mario_hook.pth", "sb3_mario_hook.py", "sb3_mario/py.typed"} <= names
    assert {f"sb3_mario/zoo_configs/{algo}.yml" for algo in ("ddqn", "dqn", "qrdqn")} <= names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=HANG_LIMIT)  # fmt: skip
    code = "import sb3_mario.zoo as z; print(z.default_config('ddqn', 'SuperMarioBros-1-1-v0'))"
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(target)}, cwd=tmp_path,
                         capture_output=True, text=True, check=True, timeout=HANG_LIMIT).stdout  # fmt: skip
    assert out.strip() == str(target / "sb3_mario" / "zoo_configs" / "ddqn.yml")


def package_imports() -> dict[str, set[str]]:
    """Each sb3_mario module and the sb3_mario modules it imports, at the top or inside functions."""
    import ast

    package = ROOT / "sb3_mario"
    names = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in package.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            edges |= {target for target in targets if target in names and target != name}
        graph[name] = edges
    return graph


def test_the_package_imports_form_no_circle():
    graph = package_imports()
    assert "sb3_mario.loading" in graph and "sb3_mario.ddqn.ddqn" in graph
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for imported in graph[module]:
            visit(imported, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])


def test_every_module_says_what_it_holds():
    import ast

    for path in (ROOT / "sb3_mario").rglob("*.py"):
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring and docstring.strip(), f"{path.relative_to(ROOT)} has no docstring"
