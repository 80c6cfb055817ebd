"""Stored token vectors: each sentence's content words, one sign bit a dimension.

The re-reading (index/rerank.py) compares every content word of a question
with a candidate passage's contextual token vectors.  Embedding the candidates
again at query time cost 50-100 ms for five of them, so a build keeps the
token vectors the model computed anyway (``index.embedder.encode_pooled``
pools sentence vectors from them): only content words (letters or digits, not
a stopword: what a question's content words can match), and of each vector
only its signs, packed eight to a byte (48 bytes a token for a 384-dimensional
model: 125 MB for the shared library, against 1.0 GB at int8).  Measured on
the cached first stage (docs/benchmarks.md, "Stored token vectors"), the signs
rank the top five as the full vectors do, within a question a set.

Why our own: this is ``np.packbits`` over a sign test, and a cosine with a
vector of ±1; the libraries that store binary token vectors (PLAID's residual
codes in colbert-ai, PyLate's indexes) need their own trained models and
index formats.  Pure: arrays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from index.keyword import STOPWORDS

if TYPE_CHECKING:
    from numpy.typing import NDArray


def is_content(word: str) -> bool:
    """A token that can carry meaning: letters or digits, not a stopword."""
    return word.isalnum() and word.lower() not in STOPWORDS


@dataclass(frozen=True)
class TokenBits:
    """Some sentences' content-word token vectors as packed sign bits:
    ``bits`` holds one row a token (``np.packbits`` of ``vector > 0``), the
    sentences' tokens one after the other, ``counts[i]`` of them sentence i's."""

    bits: NDArray[np.uint8]  # (tokens, ceil(dim / 8))
    counts: NDArray[np.int32]  # (sentences,)

    def __post_init__(self) -> None:
        if self.bits.ndim != 2 or int(self.counts.sum()) != len(self.bits):
            raise ValueError("TokenBits: the counts do not add up to the tokens")

    @property
    def sentences(self) -> int:
        return len(self.counts)

    def split(self) -> list[NDArray[np.uint8]]:
        """Each sentence's rows of ``bits``, in order (views, not copies)."""
        if not len(self.counts):
            return []
        return np.split(self.bits, np.cumsum(self.counts)[:-1])


def empty(width: int) -> TokenBits:
    return TokenBits(np.zeros((0, width), np.uint8), np.zeros(0, np.int32))


def width(dim: int) -> int:
    """Bytes a token takes for a ``dim``-dimensional model."""
    return (dim + 7) // 8


def concat(parts: Sequence[TokenBits], row_width: int) -> TokenBits:
    """``parts`` one after the other (their sentences in order)."""
    if not parts:
        return empty(row_width)
    return TokenBits(
        np.concatenate([p.bits for p in parts]).astype(np.uint8, copy=False),
        np.concatenate([p.counts for p in parts]).astype(np.int32, copy=False),
    )


def sentences_of(
    bits: NDArray[np.uint8], starts: NDArray[np.int64], first: int, count: int
) -> TokenBits:
    """Sentences ``first`` to ``first + count`` of a stored array (``bits``, and
    ``starts``: where each sentence's tokens start, then their total)."""
    at = np.asarray(starts[first : first + count + 1], dtype=np.int64)
    return TokenBits(bits[int(at[0]) : int(at[-1])], np.diff(at).astype(np.int32))


def span_rows(
    offsets: Sequence[tuple[int, int]], n: int, spans: Sequence[tuple[int, int]]
) -> list[NDArray[np.intp]]:
    """For each character span, the rows of a text's first ``n`` token vectors
    that lie wholly inside it ([CLS], [SEP] and padding, whose offsets are
    empty, never do).  Pure; what a sentence's vector is pooled from and what
    its stored tokens are drawn from (index/embedder.py ``encode_pooled``)."""
    starts = np.array([a for a, _ in offsets[:n]], dtype=np.int64)
    ends = np.array([b for _, b in offsets[:n]], dtype=np.int64)
    real = ends > starts
    return [np.flatnonzero(real & (starts >= a) & (ends <= b)) for a, b in spans]


def span_bits(
    tokens: NDArray[np.float32],
    offsets: Sequence[tuple[int, int]],
    text: str,
    rows: Sequence[NDArray[np.intp]],
) -> TokenBits:
    """The content words among each span's token rows (``span_rows``), in
    order, as sign bits.  A token is kept where its surface in ``text`` is a
    content word (``is_content``): a word piece such as "##ing" is judged by
    its own characters."""
    kept = [r[[is_content(text[offsets[i][0] : offsets[i][1]]) for i in r]] for r in rows]
    keep = np.concatenate(kept) if kept else np.zeros(0, np.intp)
    bits = (
        np.packbits(tokens[keep] > 0, axis=1)
        if len(keep)
        else np.zeros((0, width(tokens.shape[1])), np.uint8)
    )
    return TokenBits(bits.astype(np.uint8), np.array([len(r) for r in kept], np.int32))


def unpack(bits: NDArray[np.uint8], dim: int) -> NDArray[np.float32]:
    """Packed sign bits as unit vectors: each dimension ±1/sqrt(dim), so an
    inner product with a unit vector is a cosine."""
    signs = np.unpackbits(bits, axis=1, count=dim).astype(np.float32)
    out: NDArray[np.float32] = (2.0 * signs - 1.0) / np.float32(np.sqrt(dim))
    return out


def cosines(query: NDArray[np.float32], bits: NDArray[np.uint8]) -> NDArray[np.float32]:
    """``query @ unpack(bits, dim).T`` (rows of ``query`` are unit vectors of
    dimension ``dim``), without building the ±1/sqrt(dim) matrix: with s the
    0/1 signs, q . (2s - 1)/sqrt(dim) = (2 q . s - sum(q)) / sqrt(dim), so
    the scaling runs over the small (questions x tokens) result, not over every
    token's dimensions."""
    dim = query.shape[1]
    signs = np.unpackbits(bits, axis=1, count=dim).astype(np.float32)
    sums = query.sum(axis=1, keepdims=True)
    out: NDArray[np.float32] = (2.0 * (query @ signs.T) - sums) / np.float32(np.sqrt(dim))
    return out.astype(np.float32, copy=False)
