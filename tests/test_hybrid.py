"""Keyword tokens, the BM25 index and hybrid ranking, on a small real index.

The pages are written here (our own words, shared-data format) so that two
passages differ only in the rare name a question asks for: 5-HT2A vs 5-HT1A,
200 mg vs 20 mg.  That is the case BM25 exists for.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from index import Filters, build, open_index, search
from index.backend import Index
from index.embedded import EmbeddedBackend
from index.fusion import fused_scores
from index.keyword import (
    META,
    KeywordIndex,
    keyword_index_of,
    load_keyword_index,
    normalise_tokens,
    passage_text,
    passage_tokens,
)
from index.query import Options, parse, run
from index.rank import ranking
from index.records import FusionSettings
from index.search import abstains, find
from index.store import load as load_stored
from ingest import load
from ingest.errors import PodciteError
from ingest.records import Episode, Passage, Sentence


def _cite(t: str) -> str:
    return f'<a class="yt-timestamp" data-t="{t}">[{t}]</a>'


PAGES = {
    "serotonin_receptors.md": (
        "AAAAAAAAAAA",
        "Serotonin Receptors",
        [
            (
                "Psychedelics",
                "Psilocybin is turned into psilocin in the body. Psilocin binds the "
                "5-HT2A receptor on cortical neurons and opens a window of plasticity "
                f"{_cite('00:41:10')}.",
            ),
            (
                "Anxiety Drugs",
                "Buspirone calms anxiety through a different serotonin receptor, the "
                f"5-HT1A receptor, and takes weeks to work {_cite('00:52:30')}.",
            ),
            (
                "Mood",
                "Serotonin shapes mood, patience and the sense of having enough. "
                f"Low serotonin is linked to impulsive choices {_cite('00:12:05')}.",
            ),
        ],
    ),
    "caffeine_timing.md": (
        "BBBBBBBBBBB",
        "Caffeine Timing",
        [
            (
                "Dose",
                "A dose of 200 mg of caffeine taken after waking raised alertness for "
                f"several hours in adults {_cite('00:20:00')}.",
            ),
            (
                "Small Doses",
                "Even 20 milligrams of caffeine, less than a cup of tea, sharpened reaction "
                f"time in the same trial {_cite('00:24:40')}.",
            ),
            (
                "Adenosine",
                "Caffeine blocks adenosine receptors, so the pressure to sleep is masked "
                f"rather than removed {_cite('00:31:15')}.",
            ),
        ],
    ),
    "deep_rest.md": (
        "CCCCCCCCCCC",
        "Deep Rest",
        [
            (
                "Protocols",
                "Non-sleep deep rest, or NSDR, is a guided practice of slow breathing and "
                f"body scanning that restores focus after a poor night {_cite('01:05:00')}.",
            ),
            (
                "Light",
                "Bright light of 10,000 lux in the morning anchors the circadian clock "
                f"and improves sleep that night {_cite('01:15:30')}.",
            ),
        ],
    ),
}


def _page(video: str, title: str, sections: list[tuple[str, str]]) -> str:
    body = "\n\n".join(f"## {h}\n\n{t}" for h, t in sections)
    return f"---\ntitle: {title}\nvideoId: {video}\n---\n\nFrom: [[hubermanlab]]\n\n{body}\n"


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Index:  # type: ignore[no-untyped-def]
    src = tmp_path_factory.mktemp("pages")
    for name, (video, title, sections) in PAGES.items():
        (src / name).write_text(_page(video, title, sections), encoding="utf-8")
    loaded = load([src])
    assert not loaded.errors
    out = tmp_path_factory.mktemp("idx") / "index"
    build(loaded.documents, out, embedder)
    return open_index(out, embedder)


# -- tokens -------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["5HT2A", "5-HT2A", "5 HT2A", "5-ht2a", "5\u2011HT2A"])
def test_receptor_spellings_share_one_token(spelling: str) -> None:
    tokens = normalise_tokens(f"the {spelling} receptor")
    assert "5ht2a" in tokens
    assert "5ht1a" not in tokens
    assert "receptor" in tokens and "the" not in tokens


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("10 mg", "10mg"),
        ("10mg", "10mg"),
        ("10-mg", "10mg"),
        ("10 milligrams", "10mg"),
        ("1-3 Hz", "1-3hz"),
        ("1 – 3 hz", "1-3hz"),
        ("one to three Hertz", "1-3hz"),
        ("10,000 lux", "10000lux"),
        ("2.5%", "2.5pct"),
        ("40°C", "40c"),
    ],
)
def test_numbers_with_units_normalised(text: str, token: str) -> None:
    assert token in normalise_tokens(text)


def test_hyphenated_names_join_and_keep_parts() -> None:
    assert {"alphagpc", "alpha", "gpc"} <= set(normalise_tokens("alpha-GPC"))
    assert {"nonsleep", "sleep", "deep", "rest"} <= set(normalise_tokens("non-sleep deep rest"))
    assert "omega3" in normalise_tokens("omega 3") and "omega3" in normalise_tokens("omega-3")


def test_stemming_and_case_are_shared_by_documents_and_queries() -> None:
    assert normalise_tokens("Receptors DOSING") == normalise_tokens("receptor dosing")
    assert "d" in normalise_tokens("vitamin D")  # a meaningful single letter survives


# -- the index ------------------------------------------------------------------


def _top_text(index: Index, query: str, mode: str, **kw: object) -> str:
    hits = search(index, query, 3, mode=mode, **kw)  # type: ignore[arg-type]
    assert hits, (query, mode)
    return hits[0].passage.text


def _keyword(index: Index) -> KeywordIndex:
    assert isinstance(index.backend, EmbeddedBackend)
    kw = index.backend._keyword
    assert kw is not None
    return kw


def test_a_wiki_passage_names_its_episode_for_keyword_search() -> None:
    # A transcript window's title is its episode's, which names the guest; a
    # wiki page written from the episode has a topic title.  Its keyword text
    # now names the episode too, so a question naming the guest finds the page.
    def passage(i: int, kind: str, title: str, episode: str, text: str) -> Passage:
        ep = Episode(f"E{i}", episode, None)
        said = (Sentence(0, len(text), text),)
        return Passage(f"p{i}", f"d{i}", title, kind, None, ep, (), said, None)  # type: ignore[arg-type]

    pages = [
        passage(0, "wiki", "Machines", "Social Bonds | Dr. Robin Dunbar", "A friend says no."),
        passage(1, "wiki", "Machines", "Love & Robots | Dr. Lex Fridman", "A robot says no."),
        passage(2, "transcript", "Robots | Lex Fridman", "Robots | Lex Fridman", "so yeah"),
    ]
    assert passage_text(pages[1]).startswith("Love & Robots | Dr. Lex Fridman Machines")
    assert passage_text(pages[2]).count("Fridman") == 1  # its title is its episode's
    keyword = keyword_index_of([passage_tokens(p) for p in pages])
    scores = keyword.scores("What does a machine say, in Fridman's view?")
    assert int(np.argmax(scores[:2])) == 1  # a tie, without the episode, goes to row 0


def test_keyword_index_written_as_plain_files(small_index: Index) -> None:
    assert small_index.path is not None
    files = {p.name for p in (small_index.path / "bm25").iterdir()}
    assert {"vocab.index.json", "params.index.json", META} <= files
    assert _keyword(small_index).size == len(small_index)


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("What binds 5HT2A?", "5-HT2A"),
        ("5 HT1A", "5-HT1A"),
        ("effect of 200mg caffeine", "200 mg"),
        ("what does 20 mg of caffeine do", "20 milligrams"),
        ("NSDR", "Non-sleep deep rest"),
    ],
)
def test_rare_name_ranks_its_passage_first(
    small_index: Index, mode: str, query: str, needle: str
) -> None:
    assert needle in _top_text(small_index, query, mode)


def test_hybrid_score_is_the_dense_cosine(small_index: Index) -> None:
    assert small_index.embedder is not None
    q = small_index.embedder.encode(["5-HT2A receptor"])[0]
    vectors = small_index.backend.vectors  # type: ignore[attr-defined]
    for mode in ("bm25", "hybrid"):
        ranked = ranking(small_index, "5-HT2A receptor", q, 5, mode=mode).ranked  # type: ignore[arg-type]
        assert ranked
        for r in ranked:
            assert r.cosine == pytest.approx(float(vectors[r.row] @ q), abs=1e-5)
    hits = search(small_index, "5-HT2A receptor", 3, mode="hybrid")
    assert hits[0].score == pytest.approx(float(vectors[hits[0].row] @ q), abs=1e-5)


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_filters_respected_inside_the_ranking(small_index: Index, mode: str) -> None:
    # The query's best keyword match is on another episode: the filter must not
    # leave an empty list, it must rank within the episode.
    f = Filters(episode="BBBBBBBBBBB")
    hits = search(small_index, "caffeine adenosine 5-HT2A", 5, filters=f, mode=mode)  # type: ignore[arg-type]
    assert hits and all(h.passage.episode and h.passage.episode.id == "BBBBBBBBBBB" for h in hits)
    assert search(small_index, "5-HT2A", 5, filters=Filters(kind="transcript"), mode=mode) == []  # type: ignore[arg-type]


def test_bm25_mode_returns_only_keyword_matches(small_index: Index) -> None:
    assert search(small_index, "zebra xylophone", 5, mode="bm25") == []
    assert search(small_index, "zebra xylophone", 5, mode="hybrid")  # dense still answers


def test_both_fusions_rank_the_exact_name_first(small_index: Index) -> None:
    assert small_index.embedder is not None
    q = small_index.embedder.encode(["5 HT1A"])[0]
    for method in ("rrf", "weighted"):
        fusion = FusionSettings(method=method)  # type: ignore[arg-type]
        top = ranking(small_index, "5 HT1A", q, 3, mode="hybrid", fusion=fusion).ranked
        assert "5-HT1A" in small_index.backend.passage(top[0].row).text, method


def test_fuse_rrf_and_weighted_by_hand() -> None:
    dense, keyword = [1, 2, 3], [3, 4]  # candidates: 1, 2, 3, 4
    cos = np.array([0.9, 0.8, 0.7, 0.1], dtype=np.float32)
    bm = np.array([0.0, 0.0, 4.0, 2.0], dtype=np.float32)
    rrf = fused_scores(dense, keyword, cos, bm, FusionSettings("rrf", rrf_k=60))
    assert rrf == pytest.approx([1 / 61, 1 / 62, 1 / 63 + 1 / 61, 1 / 62])
    # Weighted: cosine as it is, BM25 as a share of the question's ceiling.
    half = FusionSettings("weighted", dense_weight=0.5)
    w = fused_scores(dense, keyword, cos, bm, half, bm25_ceiling=8.0)
    assert w == pytest.approx([0.45, 0.4, 0.35 + 0.25, 0.05 + 0.125])
    top = fused_scores(dense, keyword, cos, bm, half)  # ceiling: best candidate
    assert top == pytest.approx([0.45, 0.4, 0.35 + 0.5, 0.05 + 0.25])


def test_bm25_ceiling_bounds_every_score(small_index: Index) -> None:
    kw = _keyword(small_index)
    for query in ("5-HT2A receptor", "200 mg caffeine adenosine", "NSDR light lux"):
        scores, ceiling = kw.scores(query), kw.max_score(query)
        assert 0 < scores.max() <= ceiling + 1e-6
    assert kw.max_score("zebra xylophone") == 0.0


def test_index_without_keyword_index_says_rebuild(small_index: Index, tmp_path: Path) -> None:
    assert small_index.path is not None
    stored = load_stored(small_index.path)
    stored.keyword = None  # an index from before keyword indexes
    bare = Index(EmbeddedBackend(stored), stored.manifest, small_index.embedder)
    with pytest.raises(PodciteError, match="podcite ingest"):
        search(bare, "5-HT2A", 3, mode="hybrid")
    assert search(bare, "5-HT2A", 3)  # the default mode falls back to dense
    # A keyword index from another tokenizer version is as good as none.
    copy = tmp_path / "bm25"
    copy.mkdir()
    for f in (stored.path / "bm25").iterdir():  # type: ignore[operator]
        (copy / f.name).write_bytes(f.read_bytes())
    meta = json.loads((copy / META).read_text())
    (copy / META).write_text(json.dumps({**meta, "tokenizer": -1}))
    assert load_keyword_index(copy) is None
    assert load_keyword_index(tmp_path / "absent") is None


def test_keyword_index_is_bm25s_own_posting_for_posting() -> None:
    """``keyword_index_of`` builds bm25s's matrix with NumPy: every term's
    postings (rows and scores) equal ``bm25s.BM25.index``'s over the same
    tokens, empty rows, repeated terms and a row of one token included, and
    so do the scores of questions (pure: hand-made tokens, no model)."""
    import bm25s

    from index.keyword import keyword_index_of

    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    corpus = [list(rng.choice(words, size=int(rng.integers(1, 30)))) for _ in range(60)]
    corpus += [[], ["w1"], ["w2", "w2", "w2"], []]
    ours = keyword_index_of(corpus)
    theirs = bm25s.BM25()
    theirs.index([tokens or [""] for tokens in corpus], show_progress=False)
    a, b = ours.bm25, theirs
    assert set(a.vocab_dict) - {""} == set(b.vocab_dict) - {""}
    for token, i in a.vocab_dict.items():
        j = b.vocab_dict[token]
        sa = slice(a.scores["indptr"][i], a.scores["indptr"][i + 1])
        sb = slice(b.scores["indptr"][j], b.scores["indptr"][j + 1])
        assert a.scores["indices"][sa].tolist() == b.scores["indices"][sb].tolist(), token
        np.testing.assert_allclose(a.scores["data"][sa], b.scores["data"][sb], rtol=1e-6)
    reference = KeywordIndex(theirs, len(corpus))
    for q in ["w1", "w2 w3 w3", "w39 w0", "absent"]:
        np.testing.assert_allclose(ours.scores(q), reference.scores(q), rtol=1e-6, atol=1e-7)
        assert ours.max_score(q) == pytest.approx(reference.max_score(q))


# -- the best candidate's cosine (what abstaining reads) ----------------------


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
@pytest.mark.parametrize("episode", [None, "BBBBBBBBBBB"])
def test_best_cosine_is_the_best_in_scope_by_brute_force(
    small_index: Index, mode: str, episode: str | None
) -> None:
    assert small_index.embedder is not None
    vectors = small_index.backend.vectors  # type: ignore[attr-defined]
    f = Filters(episode=episode)
    scope = [
        r for r in range(small_index.backend.count()) if f.admits(small_index.backend.passage(r))
    ]
    for question in ("serotonin 200 mg", "5 HT1A", "bright light in the morning"):
        q = small_index.embed(question)
        for k in (1, 3):
            found = find(small_index, question, k, filters=f, mode=mode)  # type: ignore[arg-type]
            assert found.best_cosine == pytest.approx(float((vectors[scope] @ q).max()), abs=1e-5)


def test_abstaining_does_not_depend_on_how_many_results(small_index: Index) -> None:
    # Hybrid puts the 200 mg passage first on its keywords, with a lower cosine
    # than the best passage's (a serotonin one): a threshold between the two
    # abstained with k=1 and not with k=3 when the rule read the results shown.
    question = "serotonin 200 mg"
    first = find(small_index, question, 1)
    assert first.hits[0].score < first.best_cosine - 0.05
    between = (first.hits[0].score + first.best_cosine) / 2
    assert abstains(first.hits, between)  # the rule on the results shown
    options = Options(abstain_below=between, abstain_unknown_below=between)
    verdicts = {
        run(small_index, parse({"q": question, "k": str(k)}), False, options).abstained
        for k in (1, 2, 5)
    }
    assert verdicts == {False}
    options = Options(abstain_below=first.best_cosine + 0.01, abstain_unknown_below=0.0)
    verdicts = {
        run(small_index, parse({"q": question, "k": str(k)}), False, options).abstained
        for k in (1, 2, 5)
    }
    assert verdicts == {True}


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_best_cosine_does_not_depend_on_k(small_index: Index, mode: str) -> None:
    # ``find`` ranks at least 20 rows, more than this index has, so the ranking
    # is asked for one row directly: in bm25 and hybrid order the first row is
    # the 200 mg passage, not the serotonin one closest in meaning, and the best
    # cosine must still be the best of all the candidates, as at n = 5.
    question = "serotonin 200 mg"
    q = small_index.embed(question)
    vectors = small_index.backend.vectors  # type: ignore[attr-defined]
    best = float((vectors @ q).max())
    for n in (1, 2, 5):
        got = ranking(small_index, question, q, n, mode=mode)  # type: ignore[arg-type]
        assert got.best_cosine == pytest.approx(best, abs=1e-5), (mode, n)
    if mode != "dense":
        first = ranking(small_index, question, q, 1, mode=mode).ranked  # type: ignore[arg-type]
        assert first[0].cosine < best - 0.05  # the case the rule used to get wrong
