"""The README's Python example runs as written (a tiny checkpoint stands in if none ships)."""

import re
from pathlib import Path

import pytest

from bag import Generator, GeneratorConfig, inference, save_generator

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
    assert "(160, 120) (120, 160)" in capsys.readouterr().out


def test_readme_test_command_is_what_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.S)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in ci.splitlines()


@pytest.mark.parametrize("name", ["requirements.txt"])
def test_torch_is_pinned(name):
    assert "torch==2.13.0" in (README.parent / name).read_text().splitlines()
