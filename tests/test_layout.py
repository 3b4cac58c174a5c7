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
