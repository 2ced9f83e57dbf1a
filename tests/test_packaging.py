"""The installable project: package list, import hygiene, console script."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

from support import REPO_ROOT

# Sub-packages that may import torch or grpc: the trainers, the service and its generated code.
HEAVY = ("eventsp.train", "eventsp.services", "eventsp.clients", "eventsp.v1")


def _package_dirs() -> dict[str, str]:
    """Every folder with an ``__init__.py`` under the installed roots -> its package name."""
    roots = {"eventsp": "eventsp", "services": "eventsp.services", "clients": "eventsp.clients"}
    found = {}
    for folder, name in roots.items():
        for init in sorted((REPO_ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(REPO_ROOT / folder)
            found[str(init.parent.relative_to(REPO_ROOT))] = ".".join((name, *rel.parts))
    return found


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    missing = {folder: name for folder, name in _package_dirs().items() if name not in listed}
    assert not missing, (
        f"folders {sorted(missing)} hold packages that pyproject.toml does not list; add "
        f"{sorted(missing.values())} to [tool.setuptools] packages or they will not install"
    )


def test_core_modules_import_without_torch_or_grpc():
    """Every module outside the trainers and the service imports with no torch and no grpc."""
    code = f"""
import importlib, json, pkgutil, sys
import eventsp
import eventsp.runtime
heavy = {HEAVY!r}
names = []
# pkgutil.walk_packages imports every package to descend into it, heavy ones included, so walk
# by hand and never descend into (or import) the heavy sub-packages.
todo = [(eventsp.__path__, "eventsp.")]
while todo:
    path, prefix = todo.pop()
    for info in pkgutil.iter_modules(path, prefix):
        if info.name in heavy or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        names.append(info.name)
        if info.ispkg:
            todo.append((module.__path__, info.name + "."))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "grpc", "tonic"))
print(json.dumps({{"imported": names, "heavy": loaded}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "eventsp.cli" in result["imported"]
    assert result["heavy"] == [], f"core modules pulled in {result['heavy'][:5]}"


def test_console_script_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "eventsp", "--help"], capture_output=True, text=True, check=True
    )
    from eventsp.cli import COMMANDS

    for name in COMMANDS:
        assert f"    {name} " in out.stdout, f"`eventsp --help` does not list {name!r}"


def test_info_reports_installation():
    out = subprocess.run(
        [sys.executable, "-m", "eventsp", "info", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout)
    import eventsp

    assert info["eventsp"] == eventsp.__version__
    assert info["extras"]["serve"] is True  # the dev install has every extra
    assert info["numba_cache_dir"]


def test_unknown_command_is_a_usage_error():
    out = subprocess.run(
        [sys.executable, "-m", "eventsp", "no-such-command"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "invalid choice" in out.stderr
