"""Perceptual-hash arithmetic and a near-neighbour index that avoids comparing every pair.

Hashes are 64-bit hex strings (``imagehash.phash``). Two hashes within Hamming distance ``t`` agree
exactly on at least one of ``t + 1`` disjoint bit chunks (pigeonhole), so bucketing by chunk finds
every candidate pair; candidates are then confirmed with the real distance.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator


def parse_hash(value: str) -> int:
    """A hex perceptual hash as an int; raises ValueError naming the bad value."""
    text = (value or "").strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if not text or len(text) > 16 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a 64-bit hex perceptual hash: {value!r}")
    return int(text, 16)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _chunks(h: int, parts: int) -> list[tuple[int, int]]:
    bounds = [round(i * 64 / parts) for i in range(parts + 1)]
    return [(i, (h >> bounds[i]) & ((1 << (bounds[i + 1] - bounds[i])) - 1)) for i in range(parts)]


class HashIndex:
    """Find stored hashes within a Hamming threshold of a query."""

    def __init__(self, threshold: int):
        if not 0 <= threshold <= 32:
            raise ValueError(f"Hamming threshold {threshold} must be between 0 and 32")
        self.threshold = threshold
        self.parts = threshold + 1
        self.hashes: list[int] = []
        self.buckets: dict[tuple[int, int], list[int]] = defaultdict(list)

    def add(self, h: int) -> int:
        idx = len(self.hashes)
        self.hashes.append(h)
        for chunk in _chunks(h, self.parts):
            self.buckets[chunk].append(idx)
        return idx

    def query(self, h: int) -> list[tuple[int, int]]:
        """(index, distance) of every stored hash within the threshold."""
        seen: set[int] = set()
        out = []
        for chunk in _chunks(h, self.parts):
            for idx in self.buckets.get(chunk, ()):
                if idx in seen:
                    continue
                seen.add(idx)
                d = hamming(h, self.hashes[idx])
                if d <= self.threshold:
                    out.append((idx, d))
        return sorted(out)


def near_pairs(hashes: Iterable[int], threshold: int) -> Iterator[tuple[int, int, int]]:
    """(i, j, distance) for every pair i < j within the threshold."""
    index = HashIndex(threshold)
    for j, h in enumerate(hashes):
        for i, d in index.query(h):
            yield i, j, d
        index.add(h)
