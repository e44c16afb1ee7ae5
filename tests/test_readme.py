"""The README's examples run as written: the Python one here (a tiny checkpoint stands in if none
ships) and in a fresh process outside the repository; the command line parses."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bag import Generator, GeneratorConfig, inference, save_generator
from bag.__main__ import build_parser

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    shipped = inference.DEFAULT_CHECKPOINT
    if not shipped.exists():
        stand_in = save_generator(Generator(GeneratorConfig.tiny()), tmp_path / "g.safetensors", {})
        monkeypatch.setattr(inference, "DEFAULT_CHECKPOINT", stand_in)
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert (tmp_path / "restored.png").exists()
    assert "(120, 160, 3) (30, 40) (120, 160)" in capsys.readouterr().out


def test_readme_python_example_runs_from_outside_the_repository(tmp_path):
    """In a fresh process in another folder, with only the installed package to import from."""
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[:1]
    # -I: isolated mode, so neither the working directory nor PYTHONPATH is on sys.path.
    result = subprocess.run(
        [sys.executable, "-I", "-c", block],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(120, 160, 3) (30, 40) (120, 160)" in result.stdout
    assert (tmp_path / "restored.png").exists()


def test_readme_command_line_example_parses():
    commands = re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.S)
    (line,) = [c for c in commands if " deblur " in c]
    words = shlex.split(line)
    # Through the checkout's python: the app's set-up command does not install the `bag` script.
    assert words[:3] == [".venv/bin/python", "-m", "bag"]
    args = build_parser().parse_args(words[words.index("deblur") :])
    assert args.attention and str(args.output) == "restored"


def test_readme_test_command_is_what_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.S)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in ci.splitlines()


@pytest.mark.parametrize("name", ["requirements.txt"])
def test_torch_is_pinned(name):
    assert "torch==2.13.0" in (README.parent / name).read_text().splitlines()
