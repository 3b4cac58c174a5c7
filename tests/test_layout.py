"""The install layout: one `trialwright` namespace, every subpackage listed, no clash with a
foreign top-level `agents` (OpenAI's Agents SDK uses that name) or a user's own `app/`."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("tools", "agents", "graph", "eval", "app")


def test_every_package_folder_is_listed_under_the_trialwright_namespace():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    on_disk = {"trialwright." + ".".join(p.parent.relative_to(ROOT).parts)
               for f in FOLDERS for p in (ROOT / f).rglob("__init__.py")}
    assert listed == on_disk
    assert conf["package-dir"] == {f"trialwright.{f}": f for f in FOLDERS}


def test_a_foreign_agents_package_and_a_local_app_folder_import_side_by_side(tmp_path):
    for name in ("agents", "app"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"WHO = 'foreign {name}'\n")
    code = ("import agents, app; import trialwright.agents.critic as c, trialwright.app.cli as a; "
            "print(agents.WHO, app.WHO, c.__name__, a.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                              "PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["foreign", "agents", "foreign", "app", "trialwright.agents.critic",
                                  "trialwright.app.cli"]


def imported_modules(path: Path) -> set[str]:
    """Every `trialwright.*` module a file imports, at its top or inside a function."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("trialwright.")}


def test_nothing_in_app_imports_in_a_circle():
    """The commands share app/common.py; cli.py registers them and nothing imports cli.py."""
    app = {f"trialwright.app.{p.stem}": imported_modules(p) for p in (ROOT / "app").glob("*.py")}
    edges = {m: {d for d in deps if d in app} for m, deps in app.items()}
    assert not any("trialwright.app.cli" in deps for deps in edges.values())
    state: dict[str, str] = {}

    def visit(m: str, path: tuple[str, ...]) -> None:
        assert state.get(m) != "open", f"import cycle: {' -> '.join((*path, m))}"
        if m not in state:
            state[m] = "open"
            for d in edges[m]:
                visit(d, (*path, m))
            state[m] = "done"

    for m in edges:
        visit(m, ())
