"""The search side's decisions on small hand-made vectors, without the model.

As sentence-transformers tests ``semantic_search`` against brute force: the
embedded backend's rankings against NumPy, and fusion, collapse of same
moments, answer selection, citation-check verdicts and parameter parsing
on inputs small enough to check by hand.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from index import citecheck
from index.backend import Index
from index.coverage import common_words, name_words, unknown_terms
from index.embedded import EmbeddedBackend
from index.errors import QueryError
from index.fusion import candidates, fuse
from index.query import parse
from index.records import AnswerSentence, Filters, FusionSettings, Hit
from index.search import Found, abstains, choose_answer, distinct, found_abstains, mark_weak, search
from index.store import Stored
from ingest.records import Episode, Passage, Sentence, Time

RNG = np.random.default_rng(7)
DIM = 8


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _passage(
    i: int,
    text: str,
    *,
    doc: str = "d",
    kind: str = "wiki",
    episode: str | None = "E1",
    date: str | None = "2021-01-01",
    times: tuple[float | None, ...] = (None,),
    span: tuple[float, float] | None = None,
) -> Passage:
    words = text.split(". ")
    sentences = []
    for j, w in enumerate(words):
        t = times[j] if j < len(times) else None
        sentences.append(
            Sentence(
                start=100 * i + 10 * j,
                end=100 * i + 10 * j + 9,
                text=w,
                time=Time(t, exact=True) if t is not None else None,
                end_time=span[1] if span and j == len(words) - 1 else None,
            )
        )
    if span:
        sentences[0] = Sentence(
            sentences[0].start,
            sentences[0].end,
            sentences[0].text,
            Time(span[0], True),
            end_time=span[1] if len(sentences) == 1 else None,
        )
    ep = Episode(episode, f"Episode {episode}", date) if episode else None
    anchor = next((s.time for s in sentences if s.time is not None), None)
    return Passage(
        f"p{i}",
        doc,
        "Doc",
        kind,
        None,
        ep,
        (),
        tuple(sentences),
        anchor,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def toy() -> Index:
    texts = [
        "serotonin receptor 5-HT2A. psilocybin binds it",
        "caffeine adenosine. a dose of 200 mg",
        "sleep light morning. sunlight in the eyes",
        "dopamine motivation. cold water raises dopamine",
        "ketamine dissociation. one to three hertz rhythm",
        "breathing stress. the physiological sigh",
    ]
    passages = [
        _passage(
            i,
            t,
            kind="transcript" if i % 2 else "wiki",
            episode="E1" if i < 3 else "E2",
            date="2021-01-01" if i < 3 else "2022-06-01",
        )
        for i, t in enumerate(texts)
    ]
    vectors = _unit(RNG.normal(size=(len(texts), DIM)))
    sentences = _unit(RNG.normal(size=(sum(len(p.sentences) for p in passages), DIM)))
    stored = Stored(
        {"model": {"name": "toy"}, "dimension": DIM, "counts": {"documents": 1}},
        passages,
        vectors,
        sentences.astype(np.float16),
        [f"k{i}" for i in range(len(texts))],
    )
    stored.faiss = None  # brute-force dense path; _changed() builds FAISS on edits
    from index.keyword import build_keyword_index

    stored.keyword = build_keyword_index(passages)
    return Index(EmbeddedBackend(stored), stored.manifest)


def test_dense_is_numpy_brute_force_with_and_without_filters(toy: Index) -> None:
    backend = toy.backend
    q = _unit(RNG.normal(size=DIM))
    vectors = backend.vectors  # type: ignore[attr-defined]
    brute = vectors @ q
    assert [r for r, _ in backend.dense(q, 6, Filters())] == list(np.argsort(-brute))
    f = Filters(kind="transcript", after="2022-01-01")
    admitted = [i for i in range(len(toy)) if f.admits(backend.passage(i))]
    expected = sorted(admitted, key=lambda i: -brute[i])
    got = backend.dense(q, 6, f)
    assert [r for r, _ in got] == expected
    assert [s for _, s in got] == pytest.approx([float(brute[i]) for i in expected])


def test_keyword_ranks_only_admitted_matches(toy: Index) -> None:
    backend = toy.backend
    assert next(r for r, _ in backend.keyword("200 mg caffeine", 5, Filters())) == 1
    assert backend.keyword("200 mg caffeine", 5, Filters(episode="E2")) == []
    assert backend.keyword("zebra", 5, Filters()) == []
    scores = backend.keyword_scores("200 mg caffeine", [0, 1])
    assert scores[0] == 0 and scores[1] > 0
    assert backend.keyword_ceiling("200 mg caffeine") >= scores[1]


def test_add_and_drop_document_keep_rows_consistent() -> None:
    p1, p2 = _passage(0, "alpha beta", doc="a"), _passage(1, "gamma delta. more", doc="b")
    v = _unit(RNG.normal(size=(2, DIM)))
    s = _unit(RNG.normal(size=(3, DIM))).astype(np.float16)
    backend = EmbeddedBackend(Stored({}, [p1, p2], v, s, ["a", "b"]))
    extra = _passage(2, "epsilon zeta", doc="c")
    backend.add([extra], _unit(RNG.normal(size=(1, DIM))), [_unit(RNG.normal(size=(1, DIM)))])
    assert backend.count() == 3 and backend.keyword("epsilon", 3, Filters())[0][0] == 2
    assert backend.drop_document("b") == 1 and backend.count() == 2
    assert [backend.passage(r).document_id for r in range(2)] == ["a", "c"]
    assert backend.sentence_vectors(1).shape == (1, DIM)
    assert backend.dense(v[0], 1, Filters())[0][0] == 0
    assert backend.drop_document("nope") == 0
    assert backend.document_rows("c") == [1] and backend.document_rows("b") == []


def test_fuse_orders_by_fused_score_and_breaks_ties_on_the_cosine() -> None:
    dense, keyword = [5, 6], [7, 5]
    rows = candidates(dense, keyword)
    assert rows == [5, 6, 7]
    cos = np.array([0.5, 0.6, 0.1], dtype=np.float32)
    bm = np.array([2.0, 0.0, 4.0], dtype=np.float32)
    out = fuse(dense, keyword, cos, bm, 3, FusionSettings("weighted", dense_weight=0.5))
    # fused: 5 -> .25+.25, 6 -> .3, 7 -> .05+.5
    assert [r.row for r in out] == [7, 5, 6]
    tie = fuse([1, 2], [], np.array([0.2, 0.9], np.float32), np.zeros(2, np.float32), 2,
               FusionSettings("rrf"))  # fmt: skip
    assert [r.row for r in tie] == [1, 2]  # rank 1 beats rank 2 under RRF
    assert fuse([], [], np.zeros(0, np.float32), np.zeros(0, np.float32), 3) == []


def test_distinct_collapses_same_moment() -> None:
    a = _passage(0, "x", doc="t", kind="transcript", span=(0.0, 60.0))
    b = _passage(1, "y", doc="t", kind="transcript", span=(30.0, 90.0))  # overlaps a
    c = _passage(2, "z", doc="t", kind="transcript", span=(90.0, 150.0))
    d = _passage(3, "w", doc="other", kind="transcript", span=(30.0, 90.0))
    hits = [Hit(p, 0.9 - 0.1 * i, 0, row=i) for i, p in enumerate((a, b, c, d))]
    assert [h.row for h in distinct(hits)] == [0, 2, 3]
    assert [h.row for h in distinct(hits, 2)] == [0, 2]
    same_sentence = Hit(a, 0.5, 0, row=9)
    assert [h.row for h in distinct([hits[0], same_sentence])] == [0]


def test_choose_answer_ranks_sentences_across_passages() -> None:
    p = _passage(0, "first. second. third", times=(10.0, None, None))
    q = _passage(1, "other. more")
    hits = [Hit(p, 0.70, 0, row=0), Hit(q, 0.65, 0, row=1)]
    sims = [np.array([0.2, 0.9, 0.3], np.float32), np.array([0.85, 0.1], np.float32)]
    chosen = choose_answer(hits, sims, threshold=0.5)
    # scores: 0.6*s + 0.4*passage -> second .82, other .77, third .46 (too far from best)
    assert [(c.hit.row, c.sentence) for c in chosen] == [(0, 1), (1, 0)]
    assert choose_answer(hits, sims, threshold=0.8) == []  # the best passage is too weak
    assert choose_answer([], [], threshold=0.1) == []


def test_first_answer_sentence_prefers_the_first_result_and_own_times() -> None:
    # The second result's sentence scores a little higher on its own, but the
    # first result ranked above it (its rare words matched): it answers first,
    # and the other still joins the answer, being close enough.
    p = _passage(0, "one. two", times=(10.0, 20.0))
    q = _passage(1, "three. four")
    hits = [Hit(p, 0.70, 0, row=0), Hit(q, 0.70, 0, row=1)]
    sims = [np.array([0.80, 0.1], np.float32), np.array([0.85, 0.1], np.float32)]
    chosen = choose_answer(hits, sims, threshold=0.5)
    assert [(c.hit.row, c.sentence) for c in chosen] == [(0, 0), (1, 0)]
    # Within one passage, a close call goes to the sentence with its own exact time.
    r = _passage(2, "untimed. timed", times=(None, 30.0))
    one = choose_answer([Hit(r, 0.7, 0)], [np.array([0.81, 0.80], np.float32)], threshold=0.5)
    assert one[0].sentence == 1


def test_answer_sentence_shows_its_cards_time() -> None:
    """The same sentence shows the same time in the answer and on its card: a
    result cited at its transcript's moment gives that moment to its best
    sentence; its other sentences keep their own times."""
    p = _passage(0, "cited. other", times=(42.0, None))
    hit = Hit(p, 0.9, 0, moment=Time(300.0, True))
    assert AnswerSentence(hit, 0, 0.9).time == hit.time == Time(300.0, True)
    assert AnswerSentence(hit, 1, 0.9).time == Time(42.0, False)


def test_abstention_reads_the_cosine_and_unknown_names() -> None:
    hit = Hit(_passage(0, "x"), 0.60, 0)
    assert not abstains([hit], threshold=0.5)
    # The question names something no passage contains: 0.60 no longer suffices ...
    assert abstains([hit], threshold=0.5, unknown=["epley"], unknown_below=0.66)
    # ... unless the best passage is strong enough to outweigh it.
    strong = Hit(_passage(1, "y"), 0.70, 0)
    assert not abstains([hit, strong], threshold=0.5, unknown=["epley"], unknown_below=0.66)
    assert abstains([Hit(_passage(2, "z"), 0.45, 0)], threshold=0.5)
    assert abstains([], threshold=0.0)
    # The query path reads the best candidate's cosine, not the results shown:
    # a weak first result does not make podcite abstain when a better passage
    # was ranked (and the other way round); no result at all always abstains.
    assert not found_abstains(Found([Hit(_passage(2, "z"), 0.45, 0)], 0.60), threshold=0.5)
    assert found_abstains(Found([hit], 0.60), 0.5, unknown=["epley"], unknown_below=0.66)
    assert found_abstains(Found([], 0.9), threshold=0.0)
    # Abstaining marks every result weak, whatever its score.
    assert [h.weak for h in mark_weak([hit, strong], 0.5, abstained=True)] == [True, True]
    assert [h.weak for h in mark_weak([hit, Hit(_passage(3, "w"), 0.4, 0)], 0.5)] == [False, True]


def test_unknown_terms_are_words_no_passage_contains(toy: Index) -> None:
    # "psilocybin" and "hertz" are in the toy library; "epley", "maneuver" and
    # "beat" are not; stopwords and short words never count.
    q = "Does the Epley maneuver beat psilocybin at three hertz? Is it ok"
    assert unknown_terms(toy, q, common=frozenset()) == ["epley", "maneuver", "beat"]
    assert unknown_terms(toy, "psilocybin and caffeine, a 200 mg dose", frozenset()) == []
    # Common English words (whole words of the model's vocabulary) never count:
    # a small library lacks many of them without lacking the topic.
    assert {"maneuver", "beat"} <= common_words() and "epley" not in common_words()
    assert unknown_terms(toy, q) == ["epley"]


def test_candidate_words_for_names() -> None:
    common = frozenset({"cure", "vertigo"})
    assert name_words("Does the Epley maneuver cure vertigo, or not?", common) == [
        "epley",
        "maneuver",
    ]
    assert name_words("is it ok to go?", frozenset()) == []


def test_answer_sentence_without_own_time_shows_anchor_approximately() -> None:
    p = _passage(0, "cited. uncited", times=(42.0, None))
    own = AnswerSentence(Hit(p, 0.9, 0), 0, 0.9)
    other = AnswerSentence(Hit(p, 0.9, 0), 1, 0.9)
    assert own.time == Time(42.0, True)
    assert other.time == Time(42.0, False)
    bare = AnswerSentence(Hit(_passage(1, "none"), 0.9, 0), 0, 0.9)
    assert bare.time is None


def test_citation_check_verdicts() -> None:
    e = np.eye(DIM, dtype=np.float32)
    tl = citecheck.timeline(
        [(t, f"said {i}", e[i]) for i, t in enumerate((0.0, 100.0, 200.0, 900.0))]
    )
    no_words = citecheck.Params(overlap_weight=0.0)
    near = citecheck.check(tl, 110.0, "x", e[1], no_words)
    assert near.verdict == "confirmed" and near.said_at == 100.0
    far = citecheck.check(tl, 100.0, "x", e[3], no_words)
    assert far.verdict == "corrected" and far.said_at == 900.0
    weak = citecheck.check(tl, 100.0, "x", e[6], no_words)  # said nowhere
    assert weak.verdict == "unverified" and weak.said_at is None


def test_citation_decision_thresholds() -> None:
    times = np.array([0.0, 100.0, 400.0, 900.0])
    p = citecheck.Params(confirm=0.7, confirm_margin=0.05, confirm_alone=1.0, correct=1.0,
                         margin=0.1, unique=0.1)  # fmt: skip
    # A near match that trails a far one by more than the margin: not confirmed,
    # unless it is good enough alone.
    assert citecheck.decide(times, np.array([0.2, 0.8, 0.2, 0.9]), 100.0, p).verdict == "unverified"
    alone = citecheck.decide(times, np.array([0.2, 1.0, 0.2, 1.2]), 100.0, p)
    assert alone.verdict == "confirmed" and alone.said_at == 100.0
    # A far match corrects only when it is strong, well above the near one and
    # above the best match elsewhere (a claim said twice is not corrected).
    fix = citecheck.decide(times, np.array([0.2, 0.5, 0.6, 1.1]), 100.0, p)
    assert fix.verdict == "corrected" and fix.said_at == 900.0
    twice = citecheck.decide(times, np.array([0.2, 0.5, 1.05, 1.1]), 100.0, p)
    assert twice.verdict == "unverified" and twice.said_at is None


def test_citation_overlap_weighs_rare_terms_and_reads_numbers_alike() -> None:
    e = np.eye(DIM, dtype=np.float32)
    said = ["the brain is amazing", "a one to three Hertz rhythm appears", "the brain again",
            "and the brain once more"]  # fmt: skip
    tl = citecheck.timeline([(10.0 * i, s, e[i]) for i, s in enumerate(said)])
    o = tl.overlap("a 1-3 Hz brain rhythm", window=1)
    assert int(np.argmax(o)) == 1  # "1-3hz" and "rhythm" are rare here, "brain" is not
    assert o[1] > 0.7 and 0 < o[0] < 0.3
    wide = tl.overlap("a 1-3 Hz brain rhythm", window=2)
    assert wide[0] == pytest.approx(o[0] + o[1]) and wide[3] == o[3]  # p counts p .. p+1


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"q": "ok", "k": "５"}, "k", "whole number"),
        ({"q": "ok", "k": "2.5"}, "k", "whole number"),
        ({"q": "ok", "after": "2021-W34-1"}, "after", "YYYY-MM-DD"),
        ({"q": "ok", "after": "2022-01-01", "before": "2021-01-01"}, "after", "later"),
        ({"q": "ok", "mode": "fuzzy"}, "mode", "mode must be"),
        ({}, "q", "empty"),
    ],
)
def test_parameters_are_checked_once_the_same_way(
    raw: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(QueryError) as err:
        parse(raw)
    assert err.value.field == field and message in err.value.message


def test_blank_filters_mean_none_and_search_uses_them(toy: Index) -> None:
    params = parse({"q": " caffeine ", "k": "3", "kind": "", "episode": "", "mode": "bm25"})
    assert params.q == "caffeine" and params.k == 3 and params.filters == Filters()
    q = _unit(RNG.normal(size=DIM))
    hits = search(toy, params.q, 3, mode="bm25", vector=q)
    assert hits and hits[0].passage.id == "p1"


def test_moment_pick_prefers_matches_near_the_citation() -> None:
    from index.moment import MomentRule, pick

    times = np.array([100.0, 700.0, 5000.0])
    to_sentence = np.array([0.60, 0.62, 0.90], np.float32)
    to_question = np.array([0.50, 0.50, 0.90], np.float32)
    rule = MomentRule(question_weight=0.0, min_score=0.45, near_s=600.0, far_penalty=0.1)
    assert pick(times, to_sentence, to_question, cited=150.0, rule=rule) == 0  # 5000 s is out
    assert pick(times, to_sentence, to_question, cited=None, rule=rule) == 2
    weak = np.array([0.1, 0.2, 0.3], np.float32)
    assert pick(times, weak, weak, cited=None, rule=rule) is None
    assert pick(np.zeros(0), weak[:0], weak[:0], cited=None) is None


def test_ranked_moment_takes_the_first_window_of_the_episode_near_the_citation() -> None:
    from index.moment import ranked_moment

    windows = [
        ("E2", Time(100.0, True), "a"),
        ("E1", Time(3000.0, True), "b"),
        ("E1", Time(700.0, True), "c"),
    ]
    # The best-ranked window of E1 is 45 min from the wiki's citation: out of reach.
    assert ranked_moment("E1", 400.0, windows, near_s=600.0) == (Time(700.0, True), "c")
    assert ranked_moment("E1", None, windows, near_s=600.0) == (Time(3000.0, True), "b")
    assert ranked_moment("E3", 400.0, windows, near_s=600.0) is None


def _wiki_cited(i: int, t: Time, episode: str = "E1") -> Hit:
    p = _passage(i, "the claim", doc=f"w{i}", episode=episode)
    return Hit(replace(p, sentences=(replace(p.sentences[0], time=t),), anchor=t), 0.6, 0, row=i)


def test_a_wiki_hit_and_the_window_holding_its_checked_moment_are_one_result() -> None:
    from index.moment import checked_time, one_per_moment

    said = _passage(0, "said here. more", doc="t", kind="transcript", span=(100.0, 160.0))
    window = Hit(said, 0.7, 0, row=0)
    later = Hit(
        _passage(1, "elsewhere", doc="t", kind="transcript", span=(400.0, 460.0)), 0.6, 0, row=1
    )
    confirmed = _wiki_cited(2, Time(130.0, True, "confirmed"))
    corrected = _wiki_cited(3, Time(900.0, True, "corrected", said_at=430.0))
    unverified = _wiki_cited(4, Time(130.0, True, "unverified"))
    other_episode = _wiki_cited(5, Time(130.0, True, "confirmed"), episode="E2")
    assert checked_time(confirmed) == 130.0 and checked_time(corrected) == 430.0
    assert checked_time(unverified) is None and checked_time(window) is None
    # The window came first: the wiki hit takes its rank and its exact time.
    out = one_per_moment([window, later, unverified, other_episode, confirmed], k=5)
    assert [h.row for h in out] == [2, 1, 4, 5]
    assert out[0].moment == window.time == Time(100.0, True)
    assert out[0].heard == "said here"  # the words that second is exact for
    # The wiki hit came first: it stays, with no moment yet (with_moments gives
    # it one); the window holding its corrected moment is gone.
    out = one_per_moment([corrected, window, later], k=5)
    assert [h.row for h in out] == [3, 0] and out[0].moment is None and out[0].heard is None
    # A window merges once; a cut at k comes after every pair is made.
    twice = _wiki_cited(6, Time(140.0, True, "confirmed"))
    out = one_per_moment([window, later, confirmed, twice], k=2)
    assert [h.row for h in out] == [2, 1]
    assert one_per_moment([window, later, twice, confirmed], k=3)[2].row == 2


def test_a_passage_line_reads_back_the_same() -> None:
    from index.serial import passage_from_json, passage_to_dict

    p = _passage(0, "Café ｜ first. second", times=(1.5, None))
    line = json.dumps(passage_to_dict(p), ensure_ascii=False).encode() + b"\n"
    assert passage_from_json(line) == p
    # json writes a float that is not a number as Infinity or NaN, which orjson
    # refuses: such a line is still read.
    odd = replace(p, sentences=(replace(p.sentences[0], end_time=float("inf")), p.sentences[1]))
    assert passage_from_json(json.dumps(passage_to_dict(odd))).sentences[0].end_time == float("inf")
    with pytest.raises(ValueError):
        passage_from_json(b'{"id": ')


def test_search_threads_are_single_threaded() -> None:
    # OpenMP's thread count is per calling thread: a pool thread must set its own.
    import faiss

    from server.limits import SearchPool

    pool = SearchPool(threads=1, max_queued=4)
    try:
        assert pool.executor.submit(faiss.omp_get_max_threads).result() == 1
    finally:
        pool.close()
