"""Re-reading the first candidates token by token: late interaction (MaxSim).

The first stage compares one vector per passage with one per question, which
averages a 60-second window into a topic; BM25 reads words, not meaning.
Here every content word of the question looks for its best match among the
passage's contextual token vectors, and the passage scores the mean of those
best matches (ColBERT's MaxSim), so a passage that speaks to each part of the
question rises above one that shares only its topic.  It reads the tokens of
the same packaged model (all-MiniLM-L6-v2), untrained for this: measured on
the whole library, re-reading the first 5 lifts syn_test's transcript rows
from 0.707 to 0.791 hit@1 (0.751 with each candidate read alone) and the wiki
questions from 0.500 to 0.554, where some thirty re-rankings of the first
stage's two scores did not (docs/benchmarks.md, "Re-reading the first
candidates token by token" and "Re-reading with the window's neighbours").

Why our own: PyLate and RAGatouille score the same way but need a model
trained for late interaction, downloaded at run time; the whole rule is a
matrix product and a max, over vectors the embedder already gives
(``token_vectors``).  A build stores its passages' content-word token vectors
as sign bits (index/tokens.py), so a candidate costs an unpacking, not a
forward pass; where a backend keeps none for a row (a build carried over
from one before them, rows added to a loaded copy or upserted into Milvus)
the candidate is embedded again, at 10-20 ms each.

Each candidate is read with its surroundings (``context_rows``): a
transcript window with the two windows either side of it, a wiki passage
with those either side of it in its section.  The first stage already placed the candidate;
what the re-reading asks is whether the talk around it speaks to every part
of the question, which a question written from a few minutes of an episode
needs (docs/benchmarks.md, "Re-reading with the window's neighbours").

``best_matches``, ``mean_best``, ``rows_best``, ``question_weights``,
``reorder`` and ``nearby`` are pure, over arrays and lists; ``rerank``
gathers the arrays from the index and the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from index.embedder import TokenVectors, normalise
from index.records import RerankSettings
from index.tokens import TokenBits, concat, cosines, is_content

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.backend import Index
    from index.fusion import Ranked


def real_tokens(tv: TokenVectors, text: str) -> tuple[NDArray[np.float32], list[str]]:
    """A text's token vectors (normalised) and surfaces, without [CLS], [SEP]
    and padding: those have no characters of their own."""
    keep = [i for i, (a, b) in enumerate(tv.offsets) if b > a and i < len(tv.tokens)]
    words = [text[tv.offsets[i][0] : tv.offsets[i][1]].lower() for i in keep]
    return normalise(tv.tokens[keep]), words


def question_weights(words: Sequence[str]) -> NDArray[np.float32]:
    """1 for a question token that can carry meaning (letters or digits, not a
    stopword), 0 for the rest ("what", "does", "?"); all 1 where none can.
    Measured against weighting every token alike (syn_test 3 points lower at
    the same weight) and by the library's IDF (no better)."""
    w = np.array([1.0 if is_content(t) else 0.0 for t in words], np.float32)
    return w if w.any() else np.ones(len(words), np.float32)


def best_matches(query: NDArray[np.float32], tokens: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each question token's best cosine among ``tokens`` (rows normalised);
    -inf for every one where there are no tokens."""
    if not len(tokens):
        return np.full(len(query), -np.inf, dtype=np.float32)
    out: NDArray[np.float32] = (query @ tokens.T).max(axis=1).astype(np.float32)
    return out


def mean_best(best: NDArray[np.float32], weights: NDArray[np.float32]) -> float:
    """The ``weights``-weighted mean of ``best_matches``: ColBERT's MaxSim.  0
    where there were no tokens to match (or no question token weighs anything).
    A passage read with its context takes the elementwise max of its rows'
    ``best_matches`` first: the same as matching their tokens together."""
    total = float(weights.sum())
    if total <= 0 or not len(best) or not np.isfinite(best).all():
        return 0.0
    return float(best @ weights) / total


def reorder(ranked: Sequence[Ranked], scores: NDArray[np.float32], weight: float) -> list[Ranked]:
    """The first ``len(scores)`` of ``ranked`` ordered again by fused score +
    ``weight`` x token score (ties keep the first stage's order); the rest
    follow unchanged.  Each ``Ranked`` keeps its first-stage scores.  The
    weight was measured with hybrid's fused score (cosine and BM25 share, both
    0-1); in bm25 mode BM25's own scale dominates it."""
    head = list(ranked[: len(scores)])
    fused = np.array([r.fused for r in head], dtype=np.float64)
    order = np.argsort(-(fused + weight * scores.astype(np.float64)), kind="stable")
    return [head[j] for j in order] + list(ranked[len(scores) :])


def rerank(
    index: Index,
    query: str,
    ranked: Sequence[Ranked],
    settings: RerankSettings,
    question: TokenVectors | None = None,
) -> list[Ranked]:
    """``ranked`` with its first ``settings.top`` re-read token by token;
    ``question``: the question's token vectors where the caller has them
    (else from the index's question cache)."""
    top = min(settings.top, len(ranked))
    embedder = index.embedder
    if top < 2 or embedder is None:
        return list(ranked)
    q_vectors, q_words = real_tokens(question or index.question(query), query)
    weights = question_weights(q_words)
    # Tokens of no weight ("what", "?") change no score: leave them out.
    q_vectors, weights = q_vectors[weights > 0], weights[weights > 0]
    backend = index.backend
    head = ranked[:top]
    # Every stored row the candidates read, their own and their neighbours',
    # each unpacked and matched once (neighbouring candidates share rows).
    own = {r.row: backend.token_bits(r.row) for r in head}
    documents: dict[str, list[int]] = {}  # candidates often share a document
    reads = {
        r.row: context_rows(index, r.row, settings.around, documents)
        if own[r.row] is not None
        else []
        for r in head
    }
    rows = list(dict.fromkeys(x for ctx in reads.values() for x in ctx))
    stored: dict[int, TokenBits] = {}
    for x in rows:
        b = own[x] if x in own else backend.token_bits(x)
        if b is not None:
            stored[x] = b
    by_row = dict(zip(stored, rows_best(q_vectors, list(stored.values())), strict=True))
    bests = []
    for r in head:
        if own[r.row] is not None:
            bests.append(np.max([by_row[x] for x in reads[r.row] if x in by_row], axis=0))
            continue
        # Not stored: embedded again, one passage a forward pass, the fastest on
        # CPU (a batch pads every passage to its longest; ten candidates took a
        # median 86-90 ms one by one against 256-262 ms in batches of 8, int8
        # model, 2 cores), and the int8 model's results then do not move with
        # what else is in the batch.  Its neighbours are not embedded too: that
        # would multiply the cost by the four of them.
        text = backend.passage(r.row).embed_text()
        vectors = real_tokens(embedder.token_vectors([text])[0], text)[0]
        bests.append(best_matches(q_vectors, vectors))
    scores = np.array([mean_best(b, weights) for b in bests], np.float32)
    return reorder(ranked, scores, settings.weight)


def rows_best(query: NDArray[np.float32], rows: Sequence[TokenBits]) -> list[NDArray[np.float32]]:
    """``best_matches`` of each row's stored tokens: one unpacking and one
    matrix product for all of them, then each row's maximum."""
    if not rows:
        return []
    sims = cosines(query, concat(rows, rows[0].bits.shape[1]).bits)
    sizes = [len(r.bits) for r in rows]
    ends = np.cumsum(sizes)
    return [
        sims[:, end - n : end].max(axis=1) if n else np.full(len(query), -np.inf, np.float32)
        for n, end in zip(sizes, ends, strict=True)
    ]


def context_rows(
    index: Index, row: int, around: int, documents: dict[str, list[int]] | None = None
) -> list[int]:
    """The rows the re-reading reads with ``row``, itself included, in text
    order: up to ``around`` either side in its document (``nearby``), a wiki
    passage's only within its section.  ``documents``: each document's rows as
    already asked of the backend (filled here), so a search asks once a
    document (Milvus: a query each).

    A question written from a few minutes of talk names things said on either
    side of the sentence that answers it ("air sacs" a minute before "seventy
    square meters"), so a transcript window is read with the two windows
    either side of it (they half overlap: about a minute of talk each way).
    A wiki passage is read with its section's passages either side, so that
    both kinds of candidate are read with their surroundings.  ``around`` 0:
    the row alone.  Measured on the whole library: syn_test's transcript rows
    0.751 -> 0.791 hit@1 (docs/benchmarks.md, "Re-reading with the window's
    neighbours")."""
    if around <= 0:
        return [row]
    backend = index.backend
    me = backend.passage(row)
    documents = {} if documents is None else documents
    if me.document_id not in documents:
        documents[me.document_id] = backend.document_rows(me.document_id)
    near = nearby(documents[me.document_id], row, around)
    if me.kind == "transcript":  # a transcript's windows are one talk, chapters or not
        return near
    return [r for r in near if r == row or backend.passage(r).section == me.section]


def nearby(rows: Sequence[int], row: int, around: int) -> list[int]:
    """``row`` and up to ``around`` of ``rows`` either side of it (``[row]``
    where it is not among them)."""
    if row not in rows:
        return [row]
    at = list(rows).index(row)
    return list(rows[max(0, at - around) : at + around + 1])
