"""Search: ranked rows -> Hits, each with its best sentence, one per moment; answers.

``search`` orchestrates: rank (``index.rank``), find each row's best sentence,
collapse results that show the same moment, number them.  ``answer`` picks the
source sentences that answer the question.  Both expect a checked question
(``index.query`` checks parameters once, at the edge); the page, the JSON API,
the CLI and the evaluation all come through here, so they cannot disagree.

The decisions themselves are pure functions of arrays and records
(``index.best.best_of``, ``distinct``, ``choose_answer``, ``abstains``), tested on
hand-made vectors without the model.

Abstention reads two signals: the best passage's cosine, and whether the
question names something the library never says (``index.coverage``).  The
best cosine is that of every candidate ranked (``find``'s ``Found``), not of
the results shown: asking for 1 result or 10 must not change whether the
library answers (it did for 35 of 1,492 questions between k = 1 and k = 5,
docs/benchmarks.md, "Abstention").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import TYPE_CHECKING, TypedDict, Unpack

import numpy as np

from index.answer_type import NUMBER_BONUS, Quantity, asked_quantity, asked_words, restates
from index.backend import Index
from index.best import best_of
from index.coverage import unknown_terms
from index.fusion import Ranked
from index.moment import one_per_moment, with_moments
from index.rank import default_mode, ranking
from index.records import (
    ABSTAIN_BELOW,
    ABSTAIN_NAMED_BELOW,
    ABSTAIN_UNKNOWN_BELOW,
    AnswerSentence,
    Filters,
    FusionSettings,
    Hit,
    Mode,
    RerankSettings,
)
from index.rerank import rerank as reread
from index.spoken import asks, spoken_end

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.embedder import TokenVectors


def hit_at(
    index: Index, row: int, score: float, q: NDArray[np.float32], wants: Quantity | None = None
) -> Hit:
    """Row ``row`` as a result for query vector ``q``, with its best sentence
    (``wants``: the quantity the question asks for, ``asked_quantity``)."""
    passage = index.backend.passage(row)
    best = best_of(index.backend.sentence_vectors(row), q, passage.sentences, wants)[0]
    return Hit(passage, score, best, row=row)


def same_moment(a: Hit, b: Hit) -> bool:
    """Two hits show the same moment: one document, and the same best sentence
    or (transcript windows) overlapping time spans."""
    if a.passage.document_id != b.passage.document_id:
        return False
    if a.sentence.start == b.sentence.start:
        return True
    sa, sb = a.passage.span, b.passage.span
    return sa is not None and sb is not None and sa[0] < sb[1] and sb[0] < sa[1]


def distinct(hits: Iterable[Hit], k: int | None = None) -> list[Hit]:
    """The first ``k`` (or all) of ``hits``, in order, leaving out any that shows
    the same moment as one kept before it."""
    return list(islice(distinct_stream(hits), k))


def distinct_stream(hits: Iterable[Hit]) -> Iterator[Hit]:
    """``distinct``, one hit at a time, as far as the caller reads."""
    kept: list[Hit] = []
    for hit in hits:
        if not any(same_moment(hit, h) for h in kept):
            kept.append(hit)
            yield hit


MERGE_DEPTH = 20  # ranked rows looked through for wiki/window pairs: the smallest pool


def one_result_a_moment(
    index: Index,
    ranked: Sequence[Ranked],
    q: NDArray[np.float32],
    k: int,
    wants: Quantity | None = None,
) -> list[Hit]:
    """The first ``k`` distinct hits of ``ranked``, a wiki hit and the transcript
    window holding its checked moment made one (``moment.one_per_moment``).  A
    wiki row past the first k can merge into a window among them: such rows
    are looked for among the first ``MERGE_DEPTH`` ranked rows (whatever k, so
    the first results do not change with k), by the backend's ``kinds``, and
    only those of the windows' episodes are read (a passage read costs more
    than the rest of a search's bookkeeping)."""
    at = {r.row: i for i, r in enumerate(ranked)}
    stream = distinct_stream(hit_at(index, r.row, r.cosine, q, wants) for r in ranked)
    pool = list(islice(stream, k))
    episodes = {
        h.passage.episode.id for h in pool if h.passage.kind == "transcript" and h.passage.episode
    }
    # No window among them (a wiki-only library, a wiki filter): nothing to look for.
    past = ranked[max((at[h.row] for h in pool), default=-1) + 1 : MERGE_DEPTH] if episodes else []
    for r, (kind, episode) in zip(past, index.backend.kinds([r.row for r in past]), strict=True):
        if kind == "wiki" and episode in episodes:
            _add(pool, hit_at(index, r.row, r.cosine, q, wants), at)
    out = one_per_moment(pool, k)
    while len(out) < k:  # pairs merged among the first k: read on
        more = next(stream, None)
        if more is None:
            break
        _add(pool, more, at)
        out = one_per_moment(pool, k)
    return out


def _add(pool: list[Hit], hit: Hit, at: dict[int, int]) -> None:
    """``hit`` into ``pool`` at its rank, unless it shows a moment already there."""
    if not any(h.row == hit.row or same_moment(hit, h) for h in pool):
        pool.append(hit)
        pool.sort(key=lambda h: at[h.row])


@dataclass(frozen=True, slots=True)
class Found:
    hits: list[Hit]
    # The best cosine of every candidate ranked (-1 where none): what abstaining
    # reads, the same whatever k (index.rank.Ranking).
    best_cosine: float


class SearchOptions(TypedDict, total=False):
    """``find``'s keyword arguments, which ``search`` passes on."""

    filters: Filters
    mode: Mode | None
    fusion: FusionSettings
    vector: NDArray[np.float32] | None
    moments: bool
    rerank: RerankSettings
    question: TokenVectors | None


def search(index: Index, query: str, k: int = 5, **options: Unpack[SearchOptions]) -> list[Hit]:
    """The ``k`` best passages for a checked question, one per moment (``find``'s hits)."""
    return find(index, query, k, **options).hits


def find(
    index: Index,
    query: str,
    k: int = 5,
    *,
    filters: Filters = Filters(),
    mode: Mode | None = None,
    fusion: FusionSettings = FusionSettings(),
    vector: NDArray[np.float32] | None = None,
    moments: bool = True,
    rerank: RerankSettings = RerankSettings(),
    question: TokenVectors | None = None,
) -> Found:
    """The ``k`` best passages for a checked question, one per moment, and the
    best cosine of all the candidates.
    ``vector``: the question's embedding when the caller has it already, or
    ``question``: the question after the model (its vector and its tokens');
    ``moments``: cite wiki results at their transcript's moment where the
    index has the episode's transcript (index/moment.py); ``rerank``: the
    second stage (index/rerank.py; ``RerankSettings(0)`` turns it off)."""
    query = query.strip()
    if vector is None:
        vector = index.embed(query) if question is None else question.sentence
    q = vector
    pool = max(4 * k, 20)  # room to collapse duplicates and still return k
    first = ranking(index, query, q, pool, filters, mode or default_mode(index), fusion)
    ranked = first.ranked
    if rerank.top:
        ranked = reread(index, query, ranked, rerank, question)
    wants = asked_quantity(query)
    if moments:
        merged = one_result_a_moment(index, ranked, q, k, wants)
        hits = with_moments(index, merged, q, [r.row for r in ranked], wants)
    else:  # a generator: best sentences are found only for the rows looked at
        hits = distinct((hit_at(index, r.row, r.cosine, q, wants) for r in ranked), k)
    return Found([replace(h, rank=r + 1) for r, h in enumerate(hits)], first.best_cosine)


def abstains(
    hits: Sequence[Hit],
    threshold: float = ABSTAIN_BELOW,
    unknown: Sequence[str] = (),
    unknown_below: float = ABSTAIN_UNKNOWN_BELOW,
) -> bool:
    """True when nothing among ``hits`` answers: no hit, the best is too weak,
    or the question names something the library never mentions (``unknown``)
    and the best is not strong enough to outweigh that.  The query path reads
    ``found_abstains``, whose best cosine does not depend on k."""
    if not hits:
        return True
    return abstains_at(max(h.score for h in hits), bool(unknown), threshold, unknown_below)


def found_abstains(
    found: Found,
    threshold: float = ABSTAIN_BELOW,
    unknown: Sequence[str] = (),
    unknown_below: float = ABSTAIN_UNKNOWN_BELOW,
) -> bool:
    """``abstains`` on a search's best candidate, not its shown results."""
    if not found.hits:
        return True
    return abstains_at(found.best_cosine, bool(unknown), threshold, unknown_below)


def abstains_at(
    best: float,
    unknown: bool,
    threshold: float = ABSTAIN_BELOW,
    unknown_below: float = ABSTAIN_UNKNOWN_BELOW,
) -> bool:
    """The rule on its two numbers: the best cosine, and whether the question
    names something the library never says."""
    return best < threshold or (unknown and best < max(unknown_below, threshold))


def named_threshold(
    threshold: float, named: bool, unknown: bool, named_below: float = ABSTAIN_NAMED_BELOW
) -> float:
    """The cosine threshold a question is held to: ``named_below`` (where lower)
    for one whose names the first result holds (``coverage.names_met``) and
    that names nothing the library never says; ``threshold`` for the rest.
    The query path marks results weak and chooses answers by it as well."""
    return min(named_below, threshold) if named and not unknown else threshold


def mark_weak(
    hits: Sequence[Hit], threshold: float = ABSTAIN_BELOW, abstained: bool = False
) -> list[Hit]:
    """Hits below the threshold marked weak; all of them when podcite abstains."""
    return [replace(h, weak=abstained or h.score < threshold) for h in hits]


@dataclass(frozen=True, slots=True)
class AnswerRule:
    """How answer sentences are chosen (measured in docs/benchmarks.md, "Answer sentences")."""

    max_sentences: int = 3
    pool: int = 5  # top passages whose sentences compete
    sentence_weight: float = 0.6  # a sentence is judged by itself and by its passage
    # Each rank down the results costs this much: the ranking read the
    # question's rare words (BM25), which a sentence's cosine alone misses, so a
    # later passage's sentence must beat the first result's clearly.
    rank_penalty: float = 0.1
    exact_bonus: float = 0.02  # close calls go to a sentence with its own exact time
    within: float = 0.08  # of the best sentence's score
    # A question asking for a quantity ("how much", "what dose") prefers the
    # sentences that state a number (index/answer_type.py).
    number_bonus: float = NUMBER_BONUS
    passage_within: float = 0.1  # of the best passage's cosine
    # A sentence that asks ("So how cold should the water be?") is the one most
    # like the question and answers nothing; the host's restatement of a
    # listener's question led 20 of 861 answers (index/spoken.py ``asks``).
    asks_penalty: float = 0.05
    # A sentence that only says a wh-question's words again ("Many of you are
    # jet lagged." for "How do I get over jet lag?") tells nothing more; 12 of
    # 879 first answers did (index/answer_type.py ``restates``).
    echo_penalty: float = 0.05


def choose_answer(
    hits: Sequence[Hit],
    sims: Sequence[NDArray[np.float32]],
    threshold: float = ABSTAIN_BELOW,
    rule: AnswerRule = AnswerRule(),
    wants: Quantity | None = None,
    question: str = "",
) -> list[AnswerSentence]:
    """The answer sentences among ``hits[:rule.pool]``, given each hit's sentence
    cosines ``sims`` (same order).  Empty when the library does not answer.
    Every sentence of those passages competes on its own score (its cosine,
    its passage's, its passage's rank, whether it has its own exact time,
    where the question asks for a quantity, ``wants``, whether it states one
    of that kind, and whether it asks or only says the ``question``'s words
    again)."""
    if abstains(hits, threshold):
        return []
    asked = asked_words(question) if rule.echo_penalty else frozenset()
    top = max(h.score for h in hits)  # cosines; in hybrid order the first is not always the best
    w = rule.sentence_weight

    def own(h: Hit, j: int, s: float) -> float:  # the sentence's own worth
        stated = wants is not None and wants.stated_in(h.passage.sentences[j].text)
        back = rule.asks_penalty if asks(h.passage.sentences, j) else 0.0
        if restates(asked, h.passage.sentences[j].text):
            back += rule.echo_penalty
        return w * s + (1 - w) * h.score + (rule.number_bonus if stated else 0.0) - back

    def order(rank: int, h: Hit, j: int, worth: float) -> float:  # what comes first
        t = h.passage.sentences[j].time
        exact = rule.exact_bonus if t is not None and t.exact else 0.0
        return worth - rule.rank_penalty * rank + exact

    scored = []
    for r, (h, hs) in enumerate(zip(hits[: rule.pool], sims, strict=False)):
        for j, s in enumerate(hs):
            worth = own(h, j, float(s))  # once a sentence: it reads the text for a number
            scored.append((order(r, h, j, worth), worth, AnswerSentence(h, j, worth)))
    scored.sort(key=lambda c: -c[0])
    chosen: list[AnswerSentence] = []
    best = max((c[1] for c in scored), default=0.0)
    for _, worth, c in scored:
        if len(chosen) == rule.max_sentences:
            break
        # Keep only sentences close to the best one, and from reasonably strong passages.
        if worth < best - rule.within or c.hit.score < max(top - rule.passage_within, threshold):
            continue
        if c.hit.passage.sentences[c.sentence].says_nothing:  # "Here is the article:", "See …"
            continue
        c = whole(c)
        if any(c.text == o.text or overlap(c, o) for o in chosen):
            continue
        chosen.append(c)
    return chosen


def whole(a: AnswerSentence) -> AnswerSentence:
    """A transcript piece with the pieces that finish its spoken sentence
    (index/spoken.py); whether it still begins or ends inside one, the record
    says (``begins_mid``, ``ends_mid``)."""
    if a.hit.passage.kind != "transcript":
        return a
    return replace(a, through=spoken_end(a.hit.passage.sentences, a.sentence))


def overlap(a: AnswerSentence, b: AnswerSentence) -> bool:
    """Whether two answer sentences show some of the same words of one source
    (transcript windows overlap, and a piece shown whole takes in its next)."""
    if a.hit.passage.document_id != b.hit.passage.document_id:
        return False

    def span(x: AnswerSentence) -> tuple[int, int]:
        ss = x.hit.passage.sentences
        return ss[x.sentence].start, ss[x.last].end

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def answer(
    index: Index,
    query: str,
    hits: Sequence[Hit],
    threshold: float = ABSTAIN_BELOW,
    rule: AnswerRule = AnswerRule(),
    unknown_below: float = ABSTAIN_UNKNOWN_BELOW,
) -> list[AnswerSentence]:
    """Extractive answer: the sentences, across the top passages, closest to the
    question.  Text from the sources only; nothing is generated.  Empty where
    podcite abstains (``abstains``; ``unknown_below`` at or under ``threshold``
    leaves the unknown-word reading out, for a caller that applied it)."""
    unknown = unknown_terms(index, query) if unknown_below > threshold else []
    if abstains(hits, threshold, unknown, unknown_below):
        return []
    return answer_for(index, query, hits, index.embed(query.strip()), threshold, rule)


def answer_for(
    index: Index,
    query: str,
    hits: Sequence[Hit],
    q: NDArray[np.float32],
    threshold: float = ABSTAIN_BELOW,
    rule: AnswerRule = AnswerRule(),
) -> list[AnswerSentence]:
    """``answer``'s choice over ``hits`` for a question already embedded as
    ``q`` (``podcite eval`` has the vector: the same choice, judged)."""
    sims = [index.backend.sentence_vectors(h.row) @ q for h in hits[: rule.pool]]
    return choose_answer(hits, sims, threshold, rule, asked_quantity(query), query)
