"""train/resume_parts.py: a resume state carried through git in parts under the size limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import load_script

resume_parts = load_script("train/resume_parts.py")


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    path = tmp_path / "run" / "resume.pt"
    path.parent.mkdir()
    torch.save({"step": 7, "weights": torch.randn(3000)}, path)
    return path


def test_split_then_join_gives_the_same_file(state_file, tmp_path):
    parts_dir = tmp_path / "committed"
    resume_parts.main(["split", str(state_file), str(parts_dir), "--part-mb", "0.004"])
    parts = sorted(parts_dir.glob("resume.pt.part*"))
    assert len(parts) == -(-state_file.stat().st_size // 4000) > 1
    assert all(part.stat().st_size <= 4000 for part in parts)
    target = tmp_path / "fresh" / "resume.pt"
    resume_parts.main(["join", str(parts_dir), str(target)])
    assert target.read_bytes() == state_file.read_bytes()
    assert torch.load(target, weights_only=True)["step"] == 7
    # Splitting again with larger parts leaves no stale part behind.
    resume_parts.main(["split", str(state_file), str(parts_dir)])
    assert [p.name for p in parts_dir.glob("resume.pt.part*")] == ["resume.pt.part000"]


def test_join_refuses_altered_missing_or_unsplit_parts(state_file, tmp_path, capsys):
    parts_dir = tmp_path / "committed"
    resume_parts.split(state_file, parts_dir, 4000)
    target = tmp_path / "out.pt"
    part = parts_dir / "resume.pt.part001"
    data = bytearray(part.read_bytes())
    data[10] ^= 1
    part.write_bytes(bytes(data))
    with pytest.raises(SystemExit):
        resume_parts.main(["join", str(parts_dir), str(target)])
    assert "part001: part altered or truncated" in capsys.readouterr().err
    assert not target.exists()
    os.remove(part)
    with pytest.raises(ValueError, match="part missing"):
        resume_parts.join(parts_dir, target)
    with pytest.raises(ValueError, match="no manifest"):
        resume_parts.join(tmp_path, target)
    with pytest.raises(SystemExit):
        resume_parts.main(["split", str(tmp_path / "absent.pt"), str(parts_dir)])
