"""Training pairs for adapting the embedding model to a library, mined from the
library itself (``podcite tune``; the training is index/training.py).

Never from evaluation questions: every pair comes from the index's own
passages, sentences and vectors.  Four kinds:

- ``citation``: a wiki sentence whose citation the check confirmed (with a score
  of at least ``min_score``) or corrected ↔ the transcript's words around the
  moment the check aligned it with.  The wiki was written from the episode, so
  each is a paraphrase of what was said: the closest thing a library has to
  question ↔ moment.
- ``heading``: a wiki page's title and heading trail ↔ the section's text.
- ``cloze``: inverse cloze from transcripts, a spoken sentence ↔ the ~45 s
  around it without it.  A library without a wiki still has these.
- each pair gets one **hard negative** mined with the current model's vectors
  (the index's own): a moment of the same episode minutes away, or a moment of
  another episode on the same topic (its nearest neighbour), never one the
  current model scores at or above the positive (a likely paraphrase: the
  podcast says many things twice) nor a near-duplicate of the positive.

Pairs are restricted to a set of episodes (``split_episodes``: a fixed-seed
half), so a model can be tuned on one half and measured on the other.  The
pure rules (the split, spans, the cloze choice, negatives, batches, the sign
test) take plain values and are tested on hand-made inputs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from index import citecheck
from index.embedder import normalise

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.store import Stored

PairKind = Literal["citation", "heading", "cloze"]
PAIR_KINDS: tuple[PairKind, ...] = ("citation", "heading", "cloze")
NegativeMode = Literal["none", "same", "other", "mixed"]
BEFORE_S, AFTER_S = 15.0, 30.0  # a positive moment: from 15 s before to 30 s after
# ``podcite tune``'s default: the citation pairs alone where a library has at
# least this many (they alone measured a gain, docs/benchmarks.md "Adapting the
# model"); a library with fewer gets every kind it has.
MIN_CITATION_PAIRS = 100
MIN_GAP_S = 180.0  # a same-episode negative is at least this far from the positive
DUPLICATE = 0.9  # a candidate this close to the positive is the same content, not a negative


@dataclass(frozen=True, slots=True)
class Spoken:
    """One transcript sentence: when, what, and its vector (the current model's)."""

    time: float
    text: str
    vector: NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Pair:
    kind: PairKind
    anchor: str
    positive: str
    episode: str | None
    at: float | None  # the positive's moment (transcript positives)
    negative: str | None = None
    negative_kind: str | None = None  # "same" or "other" episode


@dataclass(frozen=True, slots=True)
class Candidate:
    """A passage a negative may be drawn from: its text, episode, moment, vector."""

    text: str
    episode: str | None
    at: float | None
    group: str  # what makes two candidates the same place (document and section)


# -- the split ---------------------------------------------------------------------


def split_episodes(episodes: Iterable[str], seed: int = 15) -> tuple[set[str], set[str]]:
    """The library's episodes in two halves by a fixed seed: (tune on, held out).
    Sorted first, so the split depends on the set of ids and the seed only."""
    ids = sorted(set(episodes))
    random.Random(seed).shuffle(ids)  # nosec B311: a seeded split of episodes, not security
    half = (len(ids) + 1) // 2
    return set(ids[:half]), set(ids[half:])


# -- the pure rules ------------------------------------------------------------------


def default_kinds(citations: int) -> tuple[PairKind, ...]:
    """The kinds ``podcite tune`` trains on by default, given how many citation
    pairs the library has."""
    return ("citation",) if citations >= MIN_CITATION_PAIRS else PAIR_KINDS


def span_text(
    timeline: Sequence[Spoken], start: float, end: float, without: int | None = None
) -> tuple[str, list[int]]:
    """The words said in ``[start, end]`` (sentence starts), leaving out sentence
    ``without``; and which sentences they are."""
    rows = [i for i, s in enumerate(timeline) if start <= s.time <= end and i != without]
    return " ".join(timeline[i].text for i in rows), rows


def cloze_choices(
    timeline: Sequence[Spoken], every_s: float, min_words: int, rng: random.Random
) -> list[int]:
    """Sentences to make inverse-cloze pairs of: at most one per ``every_s`` seconds,
    each of at least ``min_words`` words (short ones say nothing: "Right.")."""
    out: list[int] = []
    offset = rng.uniform(0, every_s)
    slot = -1
    for i, s in enumerate(timeline):
        here = int((s.time + offset) // every_s)
        if here != slot and len(s.text.split()) >= min_words:
            out.append(i)
            slot = here
    return out


def pick_negative(
    anchor: NDArray[np.float32],
    positive: NDArray[np.float32],
    candidates: NDArray[np.float32],
    allowed: NDArray[np.bool_],
    margin: float = 0.0,
) -> int | None:
    """The hardest admissible negative: the candidate the current model scores
    highest for the anchor among the ``allowed`` ones, unless it scores at or above
    the positive less ``margin`` (then it likely says the same, a false negative)
    or is a near-duplicate of the positive.  None when nothing is left."""
    if not len(candidates):
        return None
    to_anchor = candidates @ anchor
    ok = allowed & (to_anchor < float(positive @ anchor) - margin)
    ok &= candidates @ positive < DUPLICATE
    if not ok.any():
        return None
    scores = np.where(ok, to_anchor, -np.inf)
    return int(np.argmax(scores))


def batches(pairs: Sequence[Pair], size: int, seed: int) -> list[list[int]]:
    """Pair indexes in shuffled batches where no two pairs share an episode's
    minute: pairs of the same moment would be each other's in-batch negatives
    (false ones).  A pair that cannot join a batch waits for the next."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)  # nosec B311: seeded sampling of training pairs
    out: list[list[int]] = []
    waiting: list[int] = []
    queue = order
    while queue:
        batch: list[int] = []
        seen: set[tuple[str, int]] = set()
        rest: list[int] = []
        for i in [*waiting, *queue]:
            p = pairs[i]
            key = (p.episode or p.anchor, int((p.at or 0.0) // 60))
            if len(batch) < size and key not in seen:
                batch.append(i)
                seen.add(key)
            else:
                rest.append(i)
        if not batch:  # cannot happen (an empty batch admits anything); a guard
            break
        out.append(batch)
        waiting, queue = [], rest
    return out


# -- mining from an index ------------------------------------------------------------


def timelines(stored: Stored) -> dict[str, list[Spoken]]:
    """Per episode with a transcript, its sentences in time order (each once,
    though windows overlap), with the index's sentence vectors."""
    by_episode: dict[str, dict[tuple[str, int], Spoken]] = {}
    owner: dict[str, str] = {}
    starts = stored.sentence_start
    for i, p in enumerate(stored.passages):
        if p.kind != "transcript" or p.episode is None:
            continue
        if owner.setdefault(p.episode.id, p.document_id) != p.document_id:
            continue  # one transcript per episode, as the citation check has it
        seen = by_episode.setdefault(p.episode.id, {})
        for j, s in enumerate(p.sentences):
            if s.time is not None and (p.document_id, s.start) not in seen:
                vec = stored.sentence_vectors[int(starts[i]) + j].astype(np.float32)
                seen[(p.document_id, s.start)] = Spoken(s.time.seconds, s.text, vec)
    return {ep: sorted(d.values(), key=lambda s: s.time) for ep, d in by_episode.items()}


def _pooled(timeline: Sequence[Spoken], rows: Sequence[int]) -> NDArray[np.float32]:
    return normalise(np.mean([timeline[r].vector for r in rows], axis=0))


@dataclass
class Mined:
    pairs: list[Pair]
    anchors: list[NDArray[np.float32] | None]  # current model's vectors, None: embed later
    positives: list[NDArray[np.float32]]


def citation_pairs(
    stored: Stored, lines: dict[str, list[Spoken]], episodes: set[str], min_score: float
) -> Mined:
    """Checked wiki citations ↔ the words around where the transcript says them."""
    out = Mined([], [], [])
    checks = {
        ep: citecheck.timeline([(s.time, s.text, s.vector) for s in tl])
        for ep, tl in lines.items()
        if ep in episodes
    }
    starts = stored.sentence_start
    for i, p in enumerate(stored.passages):
        if p.kind != "wiki" or p.episode is None or p.episode.id not in checks:
            continue
        tl, line = checks[p.episode.id], lines[p.episode.id]
        for j, s in enumerate(p.sentences):
            t = s.time
            if t is None or not t.exact or t.verified not in ("confirmed", "corrected"):
                continue
            vec = stored.sentence_vectors[int(starts[i]) + j].astype(np.float32)
            c = citecheck.check(tl, t.seconds, s.text, vec)
            confident = c.verdict == "corrected" or c.near_score >= min_score
            if c.verdict != t.verified or c.said_at is None or not confident:
                continue
            text, rows = span_text(line, c.said_at - BEFORE_S, c.said_at + AFTER_S)
            if rows:
                out.pairs.append(Pair("citation", s.text, text, p.episode.id, c.said_at))
                out.anchors.append(normalise(vec))
                out.positives.append(_pooled(line, rows))
    return out


def heading_pairs(stored: Stored, episodes: set[str]) -> Mined:
    """A page's title and heading trail ↔ its section's first passage."""
    out = Mined([], [], [])
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for i, p in enumerate(stored.passages):
        if p.kind != "wiki" or not p.section or p.episode is None:
            continue
        if p.episode.id not in episodes or (p.document_id, p.section) in seen:
            continue
        seen.add((p.document_id, p.section))
        anchor = f"{p.document_title}: {' > '.join(p.section)}"
        out.pairs.append(Pair("heading", anchor, p.text, p.episode.id, None))
        out.anchors.append(None)
        out.positives.append(stored.vectors[i].astype(np.float32))
    return out


def cloze_pairs(
    lines: dict[str, list[Spoken]],
    episodes: set[str],
    every_s: float = 90.0,
    min_words: int = 12,
    seed: int = 15,
) -> Mined:
    """Inverse cloze: a spoken sentence ↔ the moment around it without it."""
    out = Mined([], [], [])
    rng = random.Random(seed)  # nosec B311: seeded sampling of training pairs
    for ep in sorted(lines):
        if ep not in episodes:
            continue
        line = lines[ep]
        for i in cloze_choices(line, every_s, min_words, rng):
            t = line[i].time
            text, rows = span_text(line, t - BEFORE_S - 5, t + AFTER_S - 5, without=i)
            if len(rows) >= 3:
                out.pairs.append(Pair("cloze", line[i].text, text, ep, t))
                out.anchors.append(normalise(line[i].vector))
                out.positives.append(_pooled(line, rows))
    return out


def candidates(
    stored: Stored, lines: dict[str, list[Spoken]], episodes: set[str]
) -> tuple[list[Candidate], NDArray[np.float32]]:
    """Where negatives come from: transcript moments of the given episodes (one
    every 30 s, as long as a positive) and wiki passages of their pages."""
    out: list[Candidate] = []
    vecs: list[NDArray[np.float32]] = []
    for ep in sorted(lines):
        if ep not in episodes:
            continue
        line = lines[ep]
        t, end = line[0].time, line[-1].time
        while t <= end:
            text, rows = span_text(line, t, t + BEFORE_S + AFTER_S)
            if rows:
                out.append(Candidate(text, ep, t + BEFORE_S, f"{ep}@{t:.0f}"))
                vecs.append(_pooled(line, rows))
            t += 30.0
    for i, p in enumerate(stored.passages):
        if p.kind == "wiki" and p.episode is not None and p.episode.id in episodes:
            out.append(Candidate(p.text, p.episode.id, None, f"{p.document_id}>{p.section}"))
            vecs.append(stored.vectors[i].astype(np.float32))
    matrix = np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, 1), np.float32)
    return out, matrix


def add_negatives(
    mined: Mined,
    anchors: NDArray[np.float32],
    pool: Sequence[Candidate],
    matrix: NDArray[np.float32],
    mode: NegativeMode,
    seed: int = 15,
) -> list[Pair]:
    """Each pair with its hard negative (see the module docstring); ``mixed``
    alternates a same-episode moment and another episode's.  A transcript
    positive draws from transcript moments, a wiki one from wiki passages.
    Pairs left without an admissible negative get a random one of their kind."""
    if mode == "none":
        return list(mined.pairs)
    rng = random.Random(seed)  # nosec B311: seeded sampling of training pairs
    eps = np.array([c.episode or "" for c in pool])
    ats = np.array([np.nan if c.at is None else c.at for c in pool], dtype=np.float64)
    spoken = ~np.isnan(ats)
    out: list[Pair] = []
    for n, (p, pos) in enumerate(zip(mined.pairs, mined.positives, strict=True)):
        want: str = mode if mode != "mixed" else ("same" if n % 2 == 0 else "other")
        kind = spoken if p.at is not None else ~spoken
        same = eps == (p.episode or "")
        if want == "same":
            far = np.abs(ats - p.at) >= MIN_GAP_S if p.at is not None else np.ones_like(same)
            allowed = kind & same & far
            if p.at is None:  # a wiki positive: another section of the same episode's pages
                allowed &= np.array([c.text != p.positive for c in pool])
        else:
            allowed = kind & ~same
        j = pick_negative(anchors[n], pos, matrix, allowed)
        if j is None:
            choices = np.flatnonzero(kind & ~same)
            if not len(choices):
                out.append(p)
                continue
            j, want = int(rng.choice(choices)), "random"
        out.append(Pair(p.kind, p.anchor, p.positive, p.episode, p.at, pool[j].text, want))
    return out


def mine(
    stored: Stored,
    episodes: set[str] | None,
    embed: Callable[[list[str]], NDArray[np.float32]],
    kinds: Sequence[PairKind] = PAIR_KINDS,
    negatives: NegativeMode = "mixed",
    min_score: float = 0.65,
    cloze_every_s: float = 90.0,
) -> list[Pair]:
    """All pairs of ``kinds`` from the index's episodes in ``episodes`` (None:
    all), each with a hard negative unless ``negatives`` is "none".  ``embed``
    gives the current model's vectors for anchors the index has none for (page
    titles with their headings)."""
    lines = timelines(stored)
    every = {p.episode.id for p in stored.passages if p.episode is not None}
    keep = every if episodes is None else every & episodes
    parts: list[Mined] = []
    if "citation" in kinds:
        parts.append(citation_pairs(stored, lines, keep, min_score))
    if "heading" in kinds:
        parts.append(heading_pairs(stored, keep))
    if "cloze" in kinds:
        parts.append(cloze_pairs(lines, keep, every_s=cloze_every_s))
    mined = Mined(
        [p for m in parts for p in m.pairs],
        [a for m in parts for a in m.anchors],
        [v for m in parts for v in m.positives],
    )
    if not mined.pairs:
        return []
    missing = [i for i, a in enumerate(mined.anchors) if a is None]
    filled = dict(zip(missing, embed([mined.pairs[i].anchor for i in missing]), strict=True))
    anchors = np.stack([filled[i] if a is None else a for i, a in enumerate(mined.anchors)]).astype(
        np.float32
    )
    pool, matrix = candidates(stored, lines, keep)
    return add_negatives(mined, anchors, pool, matrix, negatives)


def counts(pairs: Sequence[Pair]) -> dict[str, int]:
    """Pairs per kind, and negatives per kind of negative."""
    out: dict[str, int] = {}
    for p in pairs:
        out[p.kind] = out.get(p.kind, 0) + 1
        if p.negative_kind:
            key = f"negative {p.negative_kind}"
            out[key] = out.get(key, 0) + 1
    return out
