"""Checkpoint round trip and every way a checkpoint file can be bad."""

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from bag import CheckpointError, Generator, GeneratorConfig, load_generator, save_generator


@pytest.fixture
def generator():
    torch.manual_seed(0)
    return Generator(GeneratorConfig.tiny()).eval()


def test_round_trip_is_bit_exact(tmp_path, generator):
    path = save_generator(generator, tmp_path / "g.safetensors", {"epoch": 3, "val_psnr": 27.5})
    loaded, metadata = load_generator(path)
    assert metadata == {"epoch": 3, "val_psnr": 27.5}
    assert loaded.config == generator.config
    x = torch.rand(1, 3, 21, 19)
    with torch.no_grad():
        assert torch.equal(loaded(x).image, generator(x).image)
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed away


def test_saves_the_unwrapped_module(tmp_path, generator):
    wrapper = torch.nn.Module()
    wrapper._orig_mod = generator  # what torch.compile's OptimizedModule holds
    loaded, _ = load_generator(save_generator(wrapper, tmp_path / "g.safetensors", {}))
    assert set(loaded.state_dict()) == set(generator.state_dict())


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_generator(tmp_path / "absent.safetensors")


def test_a_folder_names_a_checkpoint_inside_it(tmp_path, generator):
    with pytest.raises(CheckpointError, match="is a folder, not a file; pass a generator"):
        load_generator(tmp_path)
    path = save_generator(generator, tmp_path / "g.safetensors", {})
    with pytest.raises(CheckpointError, match="is a folder") as error:
        load_generator(tmp_path)
    assert f"pass a file inside it, such as {path}" in str(error.value)


def test_empty_file(tmp_path):
    (tmp_path / "g.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty .* copy or download it again"):
        load_generator(tmp_path / "g.safetensors")


def test_not_safetensors(tmp_path, generator):
    path = tmp_path / "model.pt"
    torch.save(generator.state_dict(), path)
    with pytest.raises(CheckpointError, match="not a safetensors file") as error:
        load_generator(path)
    assert str(path) in str(error.value)


def test_truncated(tmp_path, generator):
    path = save_generator(generator, tmp_path / "g.safetensors", {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_generator(path)
    path.write_bytes(data[:20])
    with pytest.raises(CheckpointError, match="truncated"):
        load_generator(path)


def test_other_safetensors_format(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a BAG generator"):
        load_generator(path)


def test_weights_that_do_not_match_the_config(tmp_path, generator):
    path = save_generator(generator, tmp_path / "g.safetensors", {})
    header_size = struct.unpack("<Q", path.read_bytes()[:8])[0]
    header = json.loads(path.read_bytes()[8 : 8 + header_size])
    header["__metadata__"]["config"] = json.dumps(GeneratorConfig(base_channels=8).to_dict())
    tensors = {k: v for k, v in generator.state_dict().items()}
    save_file(tensors, path, metadata=header["__metadata__"])
    with pytest.raises(CheckpointError, match="do not match the stored config"):
        load_generator(path)


def test_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_half_precision_snapshots_load_as_float32(tmp_path, generator):
    full = save_generator(generator, tmp_path / "full.safetensors", {})
    half = save_generator(generator, tmp_path / "half.safetensors", {}, dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _ = load_generator(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert (loaded(x).image - generator(x).image).abs().max() < 0.01
