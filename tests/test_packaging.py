"""The package: pyproject.toml and requirements.txt pin the same versions, the wheel holds the
library and nothing else, the `bag` command runs, and no file edits sys.path."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def requirement_lines(name: str) -> list[str]:
    """The requirements in a requirements file: no comments, options or includes."""
    lines = [line.split("#")[0].strip() for line in (REPO / name).read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def test_pyproject_pins_what_requirements_txt_pins():
    project = PYPROJECT["project"]
    declared = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    assert sorted(declared) == sorted(requirement_lines("requirements.txt"))
    assert "torch==2.13.0" in project["dependencies"]  # a range would pull a CUDA build


def test_dev_requirements_install_the_package_itself():
    lines = (REPO / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in lines and "-e ." in lines


def test_every_package_under_bag_is_installed_and_the_shipped_generator_too():
    setuptools = PYPROJECT["tool"]["setuptools"]
    found = {
        ".".join(i.parent.relative_to(REPO).parts) for i in (REPO / "bag").rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == found | {"bag.shipped"}
    assert setuptools["package-dir"] == {"bag.shipped": "checkpoints"}
    for name in setuptools["package-data"]["bag.shipped"]:
        assert (REPO / "checkpoints" / name).is_file()


def test_no_file_edits_sys_path():
    edits = re.compile(r"sys\.path\.(insert|append)|site\.addsitedir")
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("bag", "train", "bench", "tests", "tools", "explorer")
        for path in (REPO / folder).rglob("*.py")
        if edits.search(path.read_text())
    ] + [name for name in ("app.py",) if edits.search((REPO / name).read_text())]
    assert offenders == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` would install, built from a copy of what it packages."""
    pytest.importorskip("setuptools")
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: building in the checkout would leave build/ behind
    shutil.copytree(REPO / "bag", source / "bag", ignore=shutil.ignore_patterns("__pycache__"))
    (source / "checkpoints").mkdir()
    for name in PYPROJECT["tool"]["setuptools"]["package-data"]["bag.shipped"]:
        shutil.copy(REPO / "checkpoints" / name, source / "checkpoints")
    shutil.copy(REPO / "pyproject.toml", source)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "-w", str(root / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = (root / "dist").glob("bag_explorer-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_the_library_its_pins_and_the_bag_command(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = re.findall(r"^Requires-Dist: (.+)$", archive.read(metadata).decode(), re.M)
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith("-info")}
    assert top_level == {"bag"}
    assert {"bag/layers/norm.py", "bag/__main__.py", "bag/shipped/generator.safetensors"} <= set(
        names
    )
    assert "torch==2.13.0" in requires
    assert "bag = bag.__main__:main" in scripts


@pytest.mark.slow
def test_the_readme_example_runs_on_the_installed_wheel_in_another_folder(wheel, tmp_path):
    """What `pip install .` gives a user: no checkout beside the package, the shipped model."""
    target = tmp_path / "site"  # the wheel alone; its dependencies come from this environment
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
        + ["--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    (block,) = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)[:1]
    where = "\nimport bag\nprint('bag from', bag.__file__)\n"
    result = subprocess.run(
        [sys.executable, "-c", block + where],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"bag from {target / 'bag' / '__init__.py'}" in result.stdout
    assert (
        "(120, 160, 3) (30, 40) (120, 160)" in result.stdout
        and (tmp_path / "restored.png").exists()
    )


def test_the_bag_command_runs_from_another_folder(tmp_path):
    command = Path(sys.executable).with_name("bag")
    assert command.exists(), "requirements-dev.txt installs the package and its `bag` command"
    result = subprocess.run(
        [str(command), "deblur", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "--overwrite" in result.stdout and "--allow-output-in-input" in result.stdout
