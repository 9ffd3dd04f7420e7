"""A tiny, weight-free instruction encoder: hashed bag of words and word pairs.

The model's decide head is conditioned on a 384-d instruction embedding. The full-size choice
is the all-MiniLM-L6-v2 sentence encoder (22 MB as INT8 ONNX); this encoder is the small one a
bundle can name instead: it needs no weights file, is identical on every platform, and costs
microseconds.

How it works: the text is lower-cased and split into words (apostrophes kept). Every word and
every pair of adjacent words is hashed (FNV-1a 64, fixed, not Python's salted ``hash``) into one
of ``buckets`` rows of a fixed random projection (rows drawn from numpy's PCG64 with a fixed seed,
so the same on every machine and numpy 1.x/2.x), the rows are summed, and the sum is
L2-normalised. An empty instruction (no instruction) embeds to the zero vector.

The model learns which content words matter ("doorbell", "kettle", "emergency", "dinner"), so
paraphrases that share them land close together; unlike MiniLM it knows nothing of synonyms it
never saw in training. The bundle manifest records ``{"kind": "hashed-bow", "dim", "buckets",
"seed"}`` and the runtime rebuilds exactly this encoder from it.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

__all__ = ["HashedBagOfWords", "normalise_text"]

_WORD = re.compile(r"[a-z0-9']+")
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1


def normalise_text(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters, digits, apostrophes)."""
    return _WORD.findall(text.lower())


def _fnv1a(token: str) -> int:
    h = _FNV_OFFSET
    for byte in token.encode("utf-8"):
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return h


@lru_cache(maxsize=8)
def _projection(dim: int, buckets: int, seed: int) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(seed))
    table = rng.standard_normal((buckets, dim)).astype(np.float32)
    table /= np.sqrt(dim)
    table.setflags(write=False)
    return table


class HashedBagOfWords:
    """Deterministic instruction encoder (see module docstring).

    Parameters
    ----------
    dim : embedding size (the model's ``instruction_dim``).
    buckets : rows of the hashed projection.
    seed : seed of the projection.
    """

    kind = "hashed-bow"

    def __init__(self, dim: int = 384, buckets: int = 4096, seed: int = 20261126) -> None:
        if dim <= 0 or buckets <= 0:
            raise ValueError(f"dim={dim} and buckets={buckets} must be positive")
        self.dim, self.buckets, self.seed = dim, buckets, seed
        self._table = _projection(dim, buckets, seed)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "dim": self.dim, "buckets": self.buckets, "seed": self.seed}

    @classmethod
    def from_dict(cls, spec: dict[str, object]) -> HashedBagOfWords:
        if spec.get("kind") != cls.kind:
            raise ValueError(f"instruction encoder kind {spec.get('kind')!r} is not {cls.kind!r}")
        return cls(int(spec["dim"]), int(spec["buckets"]), int(spec["seed"]))  # type: ignore[arg-type]

    def tokens(self, text: str) -> list[str]:
        words = normalise_text(text)
        return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]

    def encode(self, text: str | None) -> np.ndarray:
        """Embedding of ``text`` as float32 (dim,); zeros for ``None`` or empty text."""
        out = np.zeros(self.dim, np.float32)
        if not text:
            return out
        for token in self.tokens(text):
            out += self._table[_fnv1a(token) % self.buckets]
        norm = float(np.linalg.norm(out))
        return out / norm if norm > 0 else out
