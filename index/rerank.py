"""Re-reading the first candidates token by token: late interaction (MaxSim).

The first stage compares one vector per passage with one per question, which
averages a 60-second window into a topic; BM25 reads words, not meaning.
Here every content word of the question looks for its best match among the
passage's contextual token vectors, and the passage scores the mean of those
best matches (ColBERT's MaxSim), so a passage that speaks to each part of the
question rises above one that shares only its topic.  It reads the tokens of
the same packaged model (all-MiniLM-L6-v2), untrained for this: measured on
the whole library, re-reading the first 5 lifts syn_test's transcript rows by
4.4 points of hit@1 and the wiki questions by 5.4, where some thirty
re-rankings of the first stage's two scores did not (docs/benchmarks.md,
"Re-reading the first candidates token by token").

Why our own: PyLate and RAGatouille score the same way but need a model
trained for late interaction, downloaded at run time; the whole rule is a
matrix product and a max, over vectors the embedder already gives
(``token_vectors``).  A build stores its passages' content-word token vectors
as sign bits (index/tokens.py), so a candidate costs an unpacking, not a
forward pass; where a backend keeps none for a row (a build carried over
from one before them, rows added to a loaded copy or upserted into Milvus)
the candidate is embedded again, at 10-20 ms each.

``maxsim``, ``question_weights`` and ``reorder`` are pure, over arrays and
lists; ``rerank`` gathers the arrays from the index and the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from index.embedder import TokenVectors, normalise
from index.records import RerankSettings
from index.tokens import is_content, unpack

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


def maxsim(
    query: NDArray[np.float32],
    weights: NDArray[np.float32],
    passages: Sequence[NDArray[np.float32]],
) -> NDArray[np.float32]:
    """Each passage's score: the ``weights``-weighted mean, over the question's
    token vectors (rows of ``query``), of the best cosine any of the passage's
    token vectors has with it.  Rows normalised; an empty passage scores 0."""
    out = np.zeros(len(passages), dtype=np.float32)
    total = float(weights.sum())
    if total <= 0 or len(query) == 0:
        return out
    for j, p in enumerate(passages):
        if len(p):
            out[j] = float((query @ p.T).max(axis=1) @ weights) / total
    return out


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
    dim = q_vectors.shape[1]
    tokens = []
    for r in ranked[:top]:
        stored = index.backend.token_bits(r.row)
        if stored is not None:
            tokens.append(unpack(stored.bits, dim))
            continue
        # Not stored: embedded again, one passage a forward pass, the fastest on
        # CPU (a batch pads every passage to its longest; ten candidates took a
        # median 86-90 ms one by one against 256-262 ms in batches of 8, int8
        # model, 2 cores), and the int8 model's results then do not move with
        # what else is in the batch.
        text = index.backend.passage(r.row).embed_text()
        tokens.append(real_tokens(embedder.token_vectors([text])[0], text)[0])
    return reorder(ranked, maxsim(q_vectors, question_weights(q_words), tokens), settings.weight)
