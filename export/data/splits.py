"""Deterministic, leak-free assignment of material to the train / dev / test splits.

Everything that could leak between splits (a sentence, a voice's speaker, a real recording
file, an instruction paraphrase template, a synthesis seed) is assigned by a stable hash of its
identity, never by position in a list that could change between runs or machines. Sets that are
too small to hash reliably (a handful of recordings of one class) use :func:`stratified`, which
guarantees the held-out splits get something when there is enough to hold out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from .labels import SPLITS

__all__ = ["SPLIT_CODES", "check_split", "split_of", "stable_hash", "stratified"]

#: split -> small integer mixed into every seed of that split, so seeds cannot coincide.
SPLIT_CODES = {"train": 0x7A41, "dev": 0xDE71, "test": 0x7E57}

# fractions for hashed assignment: 70 % train, 15 % dev, 15 % test
_BOUNDS = (0.70, 0.85)


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`, else raise ``ValueError``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    return split


def stable_hash(*parts: str) -> int:
    """A 64-bit hash of strings that is the same in every process and Python version."""
    h = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little")


def split_of(kind: str, key: str) -> str:
    """The split of item ``key`` of ``kind`` ("sentence", "speaker", ...) by hashing."""
    u = stable_hash("split", kind, key) / 2.0**64
    if u < _BOUNDS[0]:
        return "train"
    if u < _BOUNDS[1]:
        return "dev"
    return "test"


def stratified(kind: str, keys: Iterable[str]) -> dict[str, str]:
    """Assign a small set of keys so each held-out split gets one when possible.

    Keys are ordered by hash. With n >= 3 keys, about 15 % (at least one) go to test and as
    many to dev, the rest to train; with 2 keys, one train and one test; with 1, train.
    """
    ordered: Sequence[str] = sorted(set(keys), key=lambda k: (stable_hash("strat", kind, k), k))
    n = len(ordered)
    out: dict[str, str] = {}
    if n >= 3:
        n_held = max(1, round(0.15 * n))
        for i, k in enumerate(ordered):
            out[k] = "test" if i < n_held else "dev" if i < 2 * n_held else "train"
    elif n == 2:
        out[ordered[0]] = "test"
        out[ordered[1]] = "train"
    elif n == 1:
        out[ordered[0]] = "train"
    return out
