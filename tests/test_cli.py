"""`bag deblur` (bag/__main__.py): it never loses a file, reports collisions before writing,
goes on past bad files, ends with a summary, and every user error is one sentence.

A tiny random generator stands in for the shipped one, so each run takes a fraction of a second.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import smooth_photo
from PIL import Image

from bag import Generator, GeneratorConfig, save_generator
from bag.__main__ import main, write_file
from bag.imageio import load_image

# First bytes of files that are not images Pillow reads, each renamed .png.
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>\n'


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("checkpoint")
    return save_generator(Generator(GeneratorConfig.tiny()), folder / "g.safetensors", {})


@pytest.fixture
def run(checkpoint, capsys):
    """main() on the tiny checkpoint and the CPU; returns (exit status, stdout, stderr)."""

    def run(*args: str | Path, checkpoint_path: Path | None = None) -> tuple[int, str, str]:
        argv = ["deblur", "--checkpoint", str(checkpoint_path or checkpoint), "--device", "cpu"]
        status = main([*argv, *map(str, args)])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return status, out, err

    return run


def photo(path: Path, height: int = 23, width: int = 37, seed: int = 0) -> Path:
    """An odd-sized photo: PNG, or JPEG when the name says so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (smooth_photo(height, width, seed) * 255 + 0.5).astype(np.uint8)
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    Image.fromarray(pixels).save(path, format="JPEG" if jpeg else "PNG")  # "..png": no suffix
    return path


def digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` and a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_writes_the_restored_image_and_its_maps_at_the_input_size(run, tmp_path):
    photo(tmp_path / "photos" / "a.png", 23, 37)
    status, out, _ = run(tmp_path / "photos", "-o", tmp_path / "out", "--attention")
    assert status == 0
    assert Image.open(tmp_path / "out" / "a.png").size == (37, 23)
    for k in range(1, 5):
        attention = Image.open(tmp_path / "out" / f"a.A{k}.png")
        assert attention.mode == "L" and attention.size == (37, 23)
    assert "done: 1 written (5 files), 0 skipped, 0 failed" in out


def test_never_replaces_an_existing_file_unless_told(run, tmp_path):
    photo(tmp_path / "in" / "a.png")
    photo(tmp_path / "in" / "b.png", seed=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"the user's own file")
    status, out, _ = run(tmp_path / "in", "-o", tmp_path / "out")
    assert status == 0
    assert (tmp_path / "out" / "a.png").read_bytes() == b"the user's own file"
    assert Image.open(tmp_path / "out" / "b.png").size == (37, 23)
    assert "1 written (1 files), 1 skipped" in out
    assert f"skipped: {tmp_path / 'in' / 'a.png'}: {tmp_path / 'out' / 'a.png'} exists" in out
    assert "--overwrite" in out

    status, out, _ = run(tmp_path / "in", "-o", tmp_path / "out", "--overwrite")
    assert status == 0 and "2 written" in out
    assert Image.open(tmp_path / "out" / "a.png").size == (37, 23)
    assert not list((tmp_path / "out").glob(".bag-*"))  # no temporary file left behind


def test_an_existing_attention_map_skips_its_image(run, tmp_path):
    photo(tmp_path / "in" / "x.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.A3.png").write_bytes(b"keep me")
    status, out, _ = run(tmp_path / "in", "-o", tmp_path / "out", "--attention")
    assert status == 0 and "0 written" in out and "x.A3.png exists" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.A3.png"]


@pytest.mark.parametrize("where", ["photos", "photos/restored"])
def test_refuses_an_output_folder_that_is_or_is_inside_an_input_folder(run, tmp_path, where):
    photo(tmp_path / "photos" / "a.jpg")
    before = digest(tmp_path)
    status, _, err = run(tmp_path / "photos", "-o", tmp_path / where)
    assert status == 2 and "--allow-output-in-input" in err
    assert err.count("\n") == 1  # one sentence
    assert digest(tmp_path) == before and not (tmp_path / "photos" / "restored").exists()


def test_refuses_the_folder_of_an_input_file_too(run, tmp_path):
    photo(tmp_path / "a.jpg")
    status, _, err = run(tmp_path / "a.jpg", "-o", tmp_path)
    assert status == 2 and "holds the input" in err


def test_output_in_the_input_folder_when_allowed_keeps_the_originals(run, tmp_path):
    original = photo(tmp_path / "photos" / "a.jpg").read_bytes()
    status, _, _ = run(tmp_path / "photos", "-o", tmp_path / "photos", "--allow-output-in-input")
    assert status == 0
    assert (tmp_path / "photos" / "a.jpg").read_bytes() == original
    assert Image.open(tmp_path / "photos" / "a.png").size == (37, 23)


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_input_is_never_replaced_by_its_own_result(run, tmp_path, overwrite):
    photo(tmp_path / "photos" / "a.png")
    before = digest(tmp_path)
    flags = ["--allow-output-in-input"] + (["--overwrite"] if overwrite else [])
    status, _, err = run(tmp_path / "photos", "-o", tmp_path / "photos", *flags)
    assert status == 2 and "is an input and would be replaced" in err
    assert digest(tmp_path) == before


@pytest.mark.parametrize(
    ("files", "attention", "target"),
    [
        (["in/a.png", "in/a.jpg"], False, "a.png"),
        (["in/A.png", "in/a.jpg"], False, "A.png"),  # one file on case-insensitive disks
        (["in/x.png", "in/x.A1.png"], True, "x.A1.png"),
        (["one/p.png", "two/p.png"], False, "p.png"),
    ],
    ids=["png-and-jpg", "upper-and-lower-case", "input-named-like-a-map", "two-folders"],
)
def test_name_collisions_are_reported_before_anything_is_written(
    run, tmp_path, files, attention, target
):
    for seed, name in enumerate(files):
        photo(tmp_path / name, seed=seed)
    photo(tmp_path / "in" / "fine.png")  # no collision: still not written
    folders = sorted({str(tmp_path / Path(name).parent) for name in files})
    before = digest(tmp_path)
    flags = ["--attention"] if attention else []
    status, _, err = run(*folders, "-o", tmp_path / "out", *flags)
    assert status == 2
    assert f"would all be written to {tmp_path / 'out' / target}" in err
    assert all(str(tmp_path / name) in err for name in files)
    assert "nothing was written" in err
    assert not (tmp_path / "out").exists() and digest(tmp_path) == before


def test_goes_on_past_bad_files_and_reports_each(run, tmp_path):
    folder = tmp_path / "in"
    photo(folder / "good1.png")
    photo(folder / "good2.jpg", 31, 29)
    (folder / "notes.png").write_text("a text file renamed .png\n")
    (folder / "phone.png").write_bytes(HEIC)
    (folder / "drawing.png").write_bytes(SVG)
    (folder / "empty.png").write_bytes(b"")
    full = photo(folder / "cut.png", 64, 64).read_bytes()
    (folder / "cut.png").write_bytes(full[: len(full) // 2])
    (folder / "readme.txt").write_text("not an image suffix: ignored")
    status, out, err = run(folder, tmp_path / "missing.png", "-o", tmp_path / "out")
    assert status == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good1.png", "good2.png"]
    assert "2 written (2 files), 0 skipped, 6 failed" in out
    expected = {
        "notes.png": "a text file, not an image file",
        "phone.png": "a HEIC photo",
        "drawing.png": "an SVG drawing",
        "empty.png": "not an image file (it is empty)",
        "cut.png": "corrupt or truncated",
        "missing.png": "no such file or folder",
    }
    failed = [line for line in out.splitlines() if line.startswith("failed: ")]
    for name, reason in expected.items():
        (line,) = [line for line in failed if f"/{name}" in line]
        assert reason in line, line
    assert "ignored: 1 file(s)" in out
    assert err.count("failed: ") == 5  # reported as they happen, too (the missing one up front)


def test_odd_names_work(run, tmp_path):
    names = ["..png", "with space.png", "ünïcødé 写真.png", "-x.png", "x.tar.png"]
    for seed, name in enumerate(names):
        photo(tmp_path / "in" / name, 17 + seed, 19)
    status, out, _ = run(tmp_path / "in", "-o", tmp_path / "out", "--attention")
    assert status == 0 and "5 written (25 files)" in out
    for seed, name in enumerate(names):
        stem = name[: -len(".png")]
        assert Image.open(tmp_path / "out" / f"{stem}.png").size == (19, 17 + seed)
        assert (tmp_path / "out" / f"{stem}.A4.png").is_file()


def test_a_leading_dash_file_given_after_double_dash(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo(tmp_path / "-x.png")
    status, _, _ = run("-o", "out", "--", "-x.png")
    assert status == 0 and (tmp_path / "out" / "-x.png").is_file()


def test_a_file_given_twice_is_restored_once(run, tmp_path):
    photo(tmp_path / "in" / "a.png")
    status, out, _ = run(tmp_path / "in", tmp_path / "in" / "a.png", "-o", tmp_path / "out")
    assert status == 0 and "1 written" in out


def test_no_images_is_a_usage_error(run, tmp_path):
    (tmp_path / "empty").mkdir()
    status, _, err = run(tmp_path / "empty", "-o", tmp_path / "out")
    assert status == 2 and "no images found" in err and not (tmp_path / "out").exists()


def test_an_output_path_that_is_a_file_is_refused(run, tmp_path):
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "out").write_text("a file")
    status, _, err = run(tmp_path / "in", "-o", tmp_path / "out")
    assert status == 2 and "is a file, not a folder" in err


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (_truncated, "is truncated"),
        (lambda p: p.write_text("hello, not a checkpoint\n"), "is not a safetensors file"),
        (lambda p: p.unlink(), "no such file"),
        (lambda p: (p.unlink(), p.mkdir()), "is a folder, not a file"),
    ],
    ids=["empty", "truncated", "text", "missing", "folder"],
)
def test_a_bad_checkpoint_is_one_sentence_and_nothing_is_written(
    run, checkpoint, tmp_path, spoil, message
):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(checkpoint.read_bytes())
    spoil(bad)
    photo(tmp_path / "in" / "a.png")
    status, _, err = run(tmp_path / "in", "-o", tmp_path / "out", checkpoint_path=bad)
    assert status == 2 and message in err and str(bad) in err
    assert err.startswith("bag: error: checkpoint ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "gpu"], "unknown device 'gpu'"),
        (["--device", "cuda:x"], "unknown device 'cuda:x'"),
        (["--tile", "50"], "'50' is not a tile size"),
        (["--tile", "big"], "'big' is not a tile size"),
    ],
)
def test_unknown_flag_values_are_one_sentence(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as stop:
        main(["deblur", str(tmp_path), "-o", str(tmp_path / "out"), *flags])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_one_sentence(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["deblur", str(tmp_path), "-o", str(tmp_path / "out"), "--device", "cuda"])
    assert "CUDA is not available here; use --device cpu or auto" in capsys.readouterr().err


def test_write_file_never_replaces_a_name_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "a.png"
    target.write_bytes(b"arrived first")
    with pytest.raises(FileExistsError):
        write_file(target, b"restored", overwrite=False)
    assert target.read_bytes() == b"arrived first"
    write_file(target, b"restored", overwrite=True)
    assert target.read_bytes() == b"restored"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (HEIC, "a HEIC photo, a format Pillow cannot read here; convert it to PNG"),
        (SVG, "an SVG drawing (vector graphics)"),
        (b"%PDF-1.7\n" + bytes(40), "a PDF document"),
        ("résumé, plain text\n".encode(), "a text file, not an image file"),
        (bytes(range(256)) * 4, "not an image file Pillow can read"),
    ],
    ids=["heic", "svg", "pdf", "text", "binary"],
)
def test_the_library_says_what_a_file_is_when_it_is_not_an_image(tmp_path, content, message):
    path = tmp_path / "photo.png"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="convert|pass a") as error:
        load_image(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_the_library_says_a_folder_is_not_an_image(tmp_path):
    with pytest.raises(ValueError, match="is a folder, not an image file"):
        load_image(tmp_path)
