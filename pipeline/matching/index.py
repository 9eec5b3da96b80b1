"""Exact Hamming-radius search over millions of binary hashes: multi-index hashing.

Near matching asks, for each hash of the seized media, which known hashes lie within
Hamming distance ``r``. Brute force costs one XOR+popcount per known hash per query
(~50 queries/s against 10 M pHashes here). Multi-index hashing (Norouzi, Punjani &
Fleet, "Fast search in Hamming space with multi-index hashing", CVPR 2012) splits each
hash into ``m`` disjoint substrings and indexes each substring in its own table. By the
pigeonhole principle, if table ``i`` is probed with every key within ``r_i`` bits of the
query's substring and ``Σ (r_i + 1) > r``, a hash within distance ``r`` is found in at
least one table (otherwise every substring would differ by more than ``r_i`` bits, and
the whole hash by more than ``r``). So the tables' probe radii only need to add up to
``r + 1 - m`` (for r = 10, m = 3: 3, 3, 2 — the paper's plain ``⌊r/m⌋`` everywhere
probes more). Each candidate is then verified with its full distance: the answers are
exactly brute force's.

Candidates cost most (a random read of the hash each); where memory allows, a table also
keeps a 32-bit *fingerprint* of each hash in table order — 32 bits of the same word
outside the table's key. Since key and fingerprint bits are disjoint, a candidate whose
key distance (the probe's bit count) plus fingerprint distance exceeds ``r`` cannot be
within ``r``; it is dropped after a sequential read, and only the rest are verified.

Layout (numpy only): hashes are ``(N, W)`` uint64 rows (W = 1 for 64-bit pHash/dHash,
4 for 256-bit PDQ). Each table is a counting sort of the N substring keys: ``order``
(uint32 positions sorted by key), ``offsets`` (2^b + 1 uint32 bucket starts) and
``occupied`` (a bool a bucket). Memory beyond the hashes: ``m × N × 4`` bytes +
``m × 2^b × 5`` bytes — for 10 M pHashes with m = 3, b ≈ 21: 120 MB + 30 MB against 80 MB
of raw hashes.

Substring width is chosen near log2(N) (the paper's rule), bounded to [8, 22] bits, by
minimising the expected probes + candidates per query among the layouts whose tables fit
in :data:`MEMORY_FACTOR` × the raw hash bytes, or in :data:`SMALL_INDEX_BYTES` when that
is more (a set of a few thousand hashes would otherwise be held to 8–10-bit substrings,
whose crowded buckets made the index slower than a scan). A layout may leave a few bits
of each word in no table: the pigeonhole argument holds on the bits that are covered
(their distance is at most the whole distance), and verification uses every bit.
Queries run in batches, fully vectorised: probe keys for a batch of queries at once,
bucket ranges expanded with ``np.repeat``, candidates verified with ``np.bitwise_count``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

_MAX_BITS = 22
_MIN_BITS = 8
MEMORY_FACTOR = 2.5  # tables ≤ this × the raw hash bytes, fingerprints included below
FINGERPRINT_FACTOR = 2.95  # with fingerprints: still under the 3× the issue allows
# …or this much, whatever the set's size: sixteen 16-bit tables for PDQ (5.6 MB for 5,500
# hashes); from ~420,000 pHashes or ~105,000 PDQ hashes on, the factor above decides.
SMALL_INDEX_BYTES = 8 << 20
# Known hashes below which a scan is as fast and simpler, for 64-bit hashes (pHash,
# dHash) and 256-bit ones (PDQ at radius 31, eight query variants per known hash). On this
# 2-core machine, scan / index with the empty-bucket check: PDQ 0.008 / 0.014 s at 500
# known, 0.024 / 0.018 s at 1,000, 0.17 / 0.036 s at 3,000, 0.58 / 0.079 s at 5,500 (the
# near-duplicate grouping of the photos benchmark); pHash at radius 8: 0.004 / 0.003 s at
# 1,000, 0.031 / 0.010 s at 4,000.
_SCAN_BELOW = 1024
_CHUNK_CANDIDATES = 1 << 22  # candidates verified per step (bounds temporary memory)
_SCAN_BLOCK = 1 << 18  # (query, known) pairs per step of a scan: 512 KiB of counters

Hits = tuple[np.ndarray, np.ndarray, np.ndarray]  # (query index, known index, distance)


def hex_to_words(values: list[str] | tuple[str, ...], bits: int) -> np.ndarray:
    """Hex strings of ``bits`` bits as an (N, bits/64) uint64 array (fast, exact)."""
    if bits % 64:
        raise ValueError(f"hash width must be a multiple of 64 bits, got {bits}")
    words = bits // 64
    digits = bits // 4
    if values and set(map(len, values)) != {digits}:  # map: C speed on 44,000 variants
        bad = next(v for v in values if len(v) != digits)
        raise ValueError(f"{bad!r} is not {digits} hex digits")
    raw = bytes.fromhex("".join(values))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(values), words)


def words_to_hex(row: np.ndarray) -> str:
    return np.asarray(row, dtype=">u8").tobytes().hex()


def distances(known: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distance of one query row to every known row."""
    return np.bitwise_count(known ^ query).sum(axis=1, dtype=np.int32)


def brute_force(known: np.ndarray, queries: np.ndarray, radius: int) -> Hits:
    """(query index, known index, distance) of every pair within ``radius``: the oracle."""
    known = _as_words(known)
    queries = _as_words(queries)
    out_q, out_k, out_d = [], [], []
    step = max(1, _CHUNK_CANDIDATES // max(1, len(known)))
    for start in range(0, len(queries), step):
        block = queries[start:start + step]
        dist = np.bitwise_count(block[:, None, :] ^ known[None, :, :]).sum(axis=2,
                                                                           dtype=np.int32)
        q, k = np.nonzero(dist <= radius)
        out_q.append(q + start)
        out_k.append(k)
        out_d.append(dist[q, k])
    return _sorted_hits(out_q, out_k, out_d)


def scan(known: np.ndarray, queries: np.ndarray, radius: int, threads: int = 2) -> Hits:
    """What :func:`brute_force` answers, word by word into a small counter (issue 18: the
    near-duplicate grouping at the end of a card's triage; 550 photos' PDQ variants 0.58 →
    0.03 s): no (queries, known, words) temporary and no reduction over a 4-long axis, and
    blocks small enough to stay in the CPU's cache. Only the first two words are compared
    for every pair: a pair already farther than ``radius`` on them is out, and the others
    (for PDQ at 31 of 256 bits, about one random pair in 10^8) get the rest (5,500
    photos' 44,000 PDQ variants: 1.5 → 0.6 s, on ``threads`` threads)."""
    known = _as_words(known)
    queries = _as_words(queries)
    columns = [np.ascontiguousarray(known[:, w]) for w in range(known.shape[1])]
    counter = np.uint16 if len(columns) * 64 <= 0xFFFF else np.int32  # cannot overflow
    prefix = min(2, len(columns))
    step = max(1, _SCAN_BLOCK // max(1, len(known)))

    def one(start: int) -> Hits:
        block = queries[start:start + step]
        dist = np.bitwise_count(block[:, 0, None] ^ columns[0][None, :]).astype(counter)
        for w in range(1, prefix):
            dist += np.bitwise_count(block[:, w, None] ^ columns[w][None, :])
        q, k = np.nonzero(dist <= radius)
        d = dist[q, k].astype(np.int32)
        if len(columns) > prefix and len(q):
            for w in range(prefix, len(columns)):
                d += np.bitwise_count(block[q, w] ^ columns[w][k])
            near = d <= radius
            q, k, d = q[near], k[near], d[near]
        return q + start, k, d

    return _blocks(one, range(0, len(queries), step), threads)


def _blocks(one: Callable[[int], Hits], starts: range, threads: int) -> Hits:
    """Every block's hits, sorted; blocks on ``threads`` threads (numpy releases the GIL
    in their loops)."""
    if threads > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(one, starts))
    else:
        parts = [one(start) for start in starts]
    return _sorted_hits([p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts])


@dataclass(frozen=True)
class _Table:
    word: int
    shift: int
    bits: int
    radius: int  # probe radius of this table
    order: np.ndarray  # uint32 positions sorted by key
    offsets: np.ndarray  # uint32, 2^bits + 1
    occupied: np.ndarray  # bool per bucket: any hash there (read before the offsets)
    fingerprint: np.ndarray | None = None  # uint32 per position, in table order


class HammingIndex:
    """Multi-index hashing over fixed-width hashes; ``search`` equals :func:`brute_force`."""

    def __init__(self, hashes: np.ndarray, radius: int, *,
                 parts_per_word: int | None = None, max_bits: int = _MAX_BITS) -> None:
        if radius < 0:
            raise ValueError(f"radius must be ≥ 0, got {radius}")
        self.hashes = _as_words(hashes)
        self.radius = radius
        n, words = self.hashes.shape
        if n >= 1 << 32:
            raise ValueError("at most 2^32 - 1 hashes per index")
        self.brute = parts_per_word is None and n < _SCAN_BELOW
        self.tables: list[_Table] = []
        if self.brute:
            return
        if parts_per_word is None:
            k, max_bits = _choose_layout(n, words, radius)
        else:
            k = parts_per_word
        if not 1 <= k <= 64 // _MIN_BITS or not _MIN_BITS <= max_bits <= _MAX_BITS + 2:
            raise ValueError(f"parts_per_word {k} / max_bits {max_bits}: substrings must be"
                             f" {_MIN_BITS}..{_MAX_BITS + 2} bits")
        self.parts = k * words
        widths = [min(w, max_bits) for w in _widths(k)]
        layout = [(word, shift, width) for word in range(words)
                  for shift, width in zip(_shifts(k), widths, strict=True)]
        radii = _probe_radii([w for _, _, w in layout], radius)
        for (word, shift, width), table_radius in zip(layout, radii, strict=True):
            self.tables.append(self._table(word, shift, width, table_radius))
        self._masks = {(t.bits, t.radius): _flip_masks(t.bits, t.radius).astype(np.intp)
                       for t in self.tables}
        self._mask_bits = {key: np.bitwise_count(m).astype(np.int32)
                           for key, m in self._masks.items()}
        self._add_fingerprints()
        self.threads = 2

    def _add_fingerprints(self) -> None:
        """Fingerprint the tables that probe most, as far as the memory budget allows."""
        budget = FINGERPRINT_FACTOR * self.hashes.nbytes
        used = self.nbytes
        for i in sorted(range(len(self.tables)),
                        key=lambda i: -len(self._masks[self.tables[i].bits,
                                                       self.tables[i].radius])):
            table = self.tables[i]
            if used + 4 * len(self.hashes) > budget:
                break
            words = self.hashes[table.order, table.word]
            rotate = np.uint64((table.shift + table.bits) % 64)
            if rotate:
                words = (words >> rotate) | (words << (np.uint64(64) - rotate))
            fingerprint = (words & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            self.tables[i] = dataclasses.replace(table, fingerprint=fingerprint)
            used += fingerprint.nbytes

    def _table(self, word: int, shift: int, bits: int, radius: int) -> _Table:
        keys = self._keys(self.hashes, word, shift, bits)
        order = np.argsort(keys, kind="stable").astype(np.uint32)
        counts = np.bincount(keys, minlength=1 << bits)
        offsets = np.zeros((1 << bits) + 1, dtype=np.uint32)
        np.cumsum(counts, out=offsets[1:])
        return _Table(word, shift, bits, radius, order, offsets, counts > 0)

    @staticmethod
    def _keys(rows: np.ndarray, word: int, shift: int, bits: int) -> np.ndarray:
        mask = np.uint64((1 << bits) - 1)
        return ((rows[:, word] >> np.uint64(shift)) & mask).astype(np.uint32)

    @property
    def nbytes(self) -> int:
        """Memory of the index structures (the hashes themselves not counted)."""
        return sum(t.order.nbytes + t.offsets.nbytes + t.occupied.nbytes
                   + (0 if t.fingerprint is None else t.fingerprint.nbytes)
                   for t in self.tables)

    def describe(self) -> dict[str, object]:
        if self.brute:
            return {"method": "scan", "hashes": len(self.hashes), "radius": self.radius}
        return {"method": "multi-index hashing", "hashes": len(self.hashes),
                "radius": self.radius, "substrings": self.parts,
                "substring_bits": [t.bits for t in self.tables],
                "probe_radii": [t.radius for t in self.tables],
                "fingerprinted": [t.fingerprint is not None for t in self.tables],
                "index_bytes": self.nbytes}

    def search(self, queries: np.ndarray, radius: int | None = None) -> Hits:
        """(query index, known index, distance) of every pair within ``radius``, sorted."""
        radius = self.radius if radius is None else radius
        if radius > self.radius:
            raise ValueError(f"the index was built for radius ≤ {self.radius}")
        queries = _as_words(queries)
        if queries.shape[1] != self.hashes.shape[1]:
            raise ValueError("queries and known hashes differ in width")
        if self.brute or len(queries) == 0:
            return scan(self.hashes, queries, radius)
        n = len(self.hashes)
        expected = sum(len(self._masks[t.bits, t.radius]) * (1 + n / (1 << t.bits))
                       for t in self.tables)
        step = int(max(1, min(len(queries), _CHUNK_CANDIDATES // max(1.0, expected))))

        def one(start: int) -> Hits:
            q, k, d = self._search_block(queries[start:start + step], radius)
            return q + start, k, d

        return _blocks(one, range(0, len(queries), step), self.threads)

    def _search_block(self, block: np.ndarray, radius: int) -> Hits:
        """Probe every table with the block's queries; verify what the probes find.

        Most probes of a sparse table land in empty buckets (PDQ's sixteen 16-bit tables
        for a card's 5,500 pictures: 92 %), so a probe first reads its bucket's flag in
        :attr:`_Table.occupied` (64 KiB for 16 bits, in cache), and only the probes that
        hit anything read the bucket's offsets. Candidates are verified on two words
        first: a pair farther than ``radius`` on them is out, and only the rest (rare, for
        random pairs) read the other words. (5,500 pictures' 44,000 PDQ variants: 0.33 →
        0.10 s on one thread.)
        """
        hits_q, hits_k, hits_d = [], [], []
        words = block.shape[1]
        for table in self.tables:
            masks = self._masks[table.bits, table.radius]
            keys = self._keys(block, table.word, table.shift, table.bits).astype(np.intp)
            probes = (keys[:, None] ^ masks[None, :]).ravel()
            found = np.flatnonzero(table.occupied[probes])
            if len(found) == 0:
                continue
            probes = probes[found]
            starts = table.offsets[probes].astype(np.int64)
            counts = table.offsets[probes + 1].astype(np.int64) - starts
            total = int(counts.sum())
            first = np.cumsum(counts) - counts
            pos = np.arange(total, dtype=np.int64) - np.repeat(first - starts, counts)
            qid = np.repeat(found // len(masks), counts)
            if table.fingerprint is not None:  # drop what key + fingerprint bits rule out
                key_bits = self._mask_bits[table.bits, table.radius][found % len(masks)]
                rotate = np.uint64((table.shift + table.bits) % 64)
                qwords = block[:, table.word]
                if rotate:
                    qwords = (qwords >> rotate) | (qwords << (np.uint64(64) - rotate))
                qfp = (qwords & np.uint64(0xFFFFFFFF)).astype(np.uint32)
                fp_bits = np.bitwise_count(table.fingerprint[pos] ^ qfp[qid])
                keep = fp_bits + np.repeat(key_bits, counts) <= radius
                pos, qid = pos[keep], qid[keep]
            cand = table.order[pos]
            order = [table.word] + [w for w in range(words) if w != table.word]
            dist = np.zeros(len(cand), dtype=np.int32)
            for n, word in enumerate(order):
                dist += np.bitwise_count(self.hashes[cand, word] ^ block[qid, word])
                if n == 1 and words > 2:  # farther already on two words: out
                    near = dist <= radius
                    cand, qid, dist = cand[near], qid[near], dist[near]
            keep = dist <= radius
            hits_q.append(qid[keep])
            hits_k.append(cand[keep].astype(np.int64))
            hits_d.append(dist[keep])
        q, k, d = _sorted_hits(hits_q, hits_k, hits_d)
        if len(q) > 1:  # a pair found through several tables is reported once
            fresh = np.ones(len(q), dtype=bool)
            fresh[1:] = (q[1:] != q[:-1]) | (k[1:] != k[:-1])
            q, k, d = q[fresh], k[fresh], d[fresh]
        return q, k, d


def _as_words(hashes: np.ndarray) -> np.ndarray:
    array = np.asarray(hashes)
    if array.dtype != np.uint64:
        raise ValueError(f"hashes must be uint64 words, got {array.dtype}")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError("hashes must be an (N,) or (N, W) array of uint64")
    return np.ascontiguousarray(array)


def _shifts(parts: int) -> list[int]:
    widths = _widths(parts)
    return [sum(widths[:i]) for i in range(parts)]


def _probe_radii(widths: list[int], radius: int) -> list[int]:
    """Per-table probe radii adding up to radius + 1 - m; extra bits go to narrow tables."""
    m = len(widths)
    need = max(0, radius + 1 - m)
    base, extra = divmod(need, m)
    narrowest = sorted(range(m), key=lambda i: (widths[i], i))[:extra]
    return [base + (1 if i in narrowest else 0) for i in range(m)]


def _widths(parts: int) -> list[int]:
    base, extra = divmod(64, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit value with at most ``radius`` bits set (XOR masks for probing)."""
    masks = [0]
    for r in range(1, min(radius, bits) + 1):
        for combo in combinations(range(bits), r):
            value = 0
            for bit in combo:
                value |= 1 << bit
            masks.append(value)
    return np.array(masks, dtype=np.uint32)


def _choose_layout(n: int, words: int, radius: int) -> tuple[int, int]:
    """(parts per word, width cap) minimising probes + candidates within the memory cap."""
    budget = max(MEMORY_FACTOR * 8 * words * n, SMALL_INDEX_BYTES)
    best, best_cost = (64 // _MIN_BITS, _MIN_BITS), float("inf")
    for k in range(1, 64 // _MIN_BITS + 1):
        for cap in range(_MIN_BITS, _MAX_BITS + 1):
            widths = [min(w, cap) for w in _widths(k)] * words
            if max(widths) < cap and cap > _MIN_BITS:
                continue  # the cap does not bind: same layout as a smaller cap
            memory = sum(4 * n + 4 * ((1 << w) + 1) + (1 << w) for w in widths)
            if memory > budget:
                continue
            cost = 0.0
            for width, sub in zip(widths, _probe_radii(widths, radius), strict=True):
                probes = sum(comb(width, i) for i in range(sub + 1))
                cost += probes * (1 + 1.5 * n / (1 << width))
            if cost < best_cost:
                best, best_cost = (k, cap), cost
    return best


def _sorted_hits(qs: list[np.ndarray], ks: list[np.ndarray], ds: list[np.ndarray]) -> Hits:
    if not qs:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=np.int32)
    q = np.concatenate(qs).astype(np.int64)
    k = np.concatenate(ks).astype(np.int64)
    d = np.concatenate(ds).astype(np.int32)
    order = np.lexsort((k, q))
    return q[order], k[order], d[order]
