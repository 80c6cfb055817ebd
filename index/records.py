"""The records of the search side: what a question is searched with and what it returns.

``ingest.records`` holds what sources reduce to (documents, sentences, passages);
this module holds what the search hands back (``Hit``, ``AnswerSentence``) and
the vocabulary every edge shares: the ranking modes, the fusions, the filters
and the limits on a question.  It imports nothing heavy, so settings, the CLI's
argument checks and pure tests can use it without NumPy or a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from index import spoken
from ingest.records import Passage, Sentence, Time

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[Mode, ...] = get_args(Mode)  # the first is the default where a keyword index exists
Fusion = Literal["weighted", "rrf"]
FUSIONS: tuple[Fusion, ...] = get_args(Fusion)  # the first is the default (docs/retrieval.md)

MAX_QUERY_CHARS = 1000
MAX_K = 50
MAX_RERANK = 20  # candidates a request may have re-read (index/rerank.py); 5 measured best
MAX_RERANK_SETTING = 100  # ... and the operator's setting (PODCITE_RERANK, eval --rerank)
# Below this cosine, the best passage does not answer the question: podcite
# abstains and marks the results weak.  Calibrated, together with the next
# one, on the shared relevant_qs / irrelevant_qs sets with their labels
# audited by hand (eval/scope_audit.jsonl), our own sets and our lookalike
# questions (docs/benchmarks.md, "Abstention"; `podcite eval`).
ABSTAIN_BELOW = 0.50
# ... and below this one when the question names something no passage of
# the library contains (a remedy, a device, a supplement it never mentions:
# ``index.search.unknown_terms``), cross-validated with ABSTAIN_BELOW.
ABSTAIN_UNKNOWN_BELOW = 0.66
# ... and only below this one when the question names people or products
# (uncommon words written with a capital) that the first result holds
# (``index.coverage.names_met``): fixed with its rule before it was scored once
# on questions written after (eval/proper_name_prereg.json).
ABSTAIN_NAMED_BELOW = 0.45


@dataclass(frozen=True, slots=True)
class FusionSettings:
    """How hybrid search fuses its two ranked lists (index/fusion.py says why)."""

    method: Fusion = FUSIONS[0]
    dense_weight: float = 0.7  # weighted: share of the cosine (0.5-0.8 measured)
    rrf_k: int = 60  # rrf: the usual constant; ranks 1 and 10 differ by ~13%
    depth: int = 100  # candidates from each list before fusing (20, 40, 100 measured alike)


@dataclass(frozen=True, slots=True)
class RerankSettings:
    """The second stage (index/rerank.py): the first ``top`` candidates re-read
    token by token, from the token vectors the build stored (about 1 ms a search for
    five on two cores; 10-20 ms a candidate where a build stored none);
    docs/benchmarks.md, "Re-reading the first candidates token by token"."""

    top: int = 5  # candidates re-read; 0 = off (5, 10 and 20 measured alike)
    weight: float = 0.75  # the token score's share beside the fused score (0.25-2.0 measured)
    # Passages either side of a candidate read with it (in its document; a wiki
    # passage's within its section); 0 = each candidate alone.
    around: int = 2


@dataclass(frozen=True, slots=True)
class Filters:
    """What a search may return.  Applied inside the ranking, never after it,
    so a filter cannot empty a list that has matches further down."""

    kind: str | None = None  # "wiki" | "transcript"
    episode: str | None = None  # episode id (YouTube id)
    after: str | None = None  # ISO dates, inclusive, on the episode's date
    before: str | None = None

    def __bool__(self) -> bool:
        return any((self.kind, self.episode, self.after, self.before))

    def admits(self, p: Passage) -> bool:
        if self.kind and p.kind != self.kind:
            return False
        if self.episode and (p.episode is None or p.episode.id != self.episode):
            return False
        if self.after or self.before:
            date = p.episode.date if p.episode else None
            if date is None:
                return False
            if self.after and date < self.after:
                return False
            if self.before and date > self.before:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Hit:
    passage: Passage
    score: float  # the dense cosine, whatever the order: thresholds are calibrated on it
    best_sentence: int  # index into passage.sentences
    row: int = -1  # the passage's row in its backend
    rank: int = 0
    weak: bool = False  # below the answer threshold: shown, but marked as a weak match
    # A wiki result whose episode's transcript is in the index: the second the
    # transcript says it (index/moment.py), exact for the transcript's text.
    moment: Time | None = None
    # The transcript's sentence said at ``moment``, where it was read: the words
    # that exact second is exact for (the wiki passage paraphrases them).
    heard: str | None = None

    @property
    def sentence(self) -> Sentence:
        return self.passage.sentences[self.best_sentence]

    @property
    def source_time(self) -> Time | None:
        """The source's own time for the best sentence: its own when it has one
        (a transcript: the cue where the answer starts), else the passage's
        anchor, approximate (``Passage.time_of``)."""
        return self.passage.time_of(self.best_sentence)

    @property
    def time(self) -> Time | None:
        """The moment to cite: the transcript's where one was found, else the source's."""
        return self.moment if self.moment is not None else self.source_time


@dataclass(frozen=True, slots=True)
class AnswerSentence:
    hit: Hit  # the result it comes from (its passage gives document and episode)
    sentence: int  # index into hit.passage.sentences
    score: float
    # A transcript sentence cut into pieces is shown to the piece that finishes
    # it (index/spoken.py): the last piece shown; None is ``sentence`` alone.
    through: int | None = None

    @property
    def last(self) -> int:
        """The last of the passage's sentences shown."""
        return self.sentence if self.through is None else self.through

    @property
    def text(self) -> str:
        """The words shown: the sentence, and the pieces that finish it."""
        return " ".join(s.text for s in self.hit.passage.sentences[self.sentence : self.last + 1])

    @property
    def begins_mid(self) -> bool:
        """A transcript piece that continues a spoken sentence begun before it."""
        said = self.hit.passage.sentences
        return self.hit.passage.kind == "transcript" and spoken.begins_mid(said, self.sentence)

    @property
    def ends_mid(self) -> bool:
        """A transcript's spoken sentence goes on past what is shown."""
        said = self.hit.passage.sentences
        return self.hit.passage.kind == "transcript" and not spoken.finished(said[self.last].text)

    @property
    def time(self) -> Time | None:
        """The time its result card shows for it: the result's transcript moment
        when it is the result's best sentence (``Hit.time``), else its own time,
        else its passage's anchor, approximate (``Passage.time_of``)."""
        if self.sentence == self.hit.best_sentence:
            return self.hit.time
        return self.hit.passage.time_of(self.sentence)

    @property
    def heard(self) -> str | None:
        """The transcript's sentence said at ``time`` where that time is the
        result's transcript moment (``Hit.heard``); else None."""
        return self.hit.heard if self.sentence == self.hit.best_sentence else None
