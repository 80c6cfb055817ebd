"""The token-by-token second stage (index/rerank.py): its pure parts on small
hand-made vectors, checked against loops written out; then the real model on
the seed index, its scores checked against passages embedded one at a time."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from index.embedder import TokenVectors, normalise
from index.errors import QueryError
from index.fusion import Ranked
from index.query import Options, parse, run
from index.rank import ranking
from index.records import RerankSettings
from index.rerank import (
    best_matches,
    context_rows,
    mean_best,
    nearby,
    question_weights,
    real_tokens,
    reorder,
    rerank,
    rows_best,
)
from index.search import search
from index.tokens import (
    TokenBits,
    concat,
    cosines,
    empty,
    is_content,
    sentences_of,
    span_bits,
    span_rows,
    unpack,
    width,
)
from index.vectors import embed_input


def _unit(*rows: list[float]) -> NDArray[np.float32]:
    return normalise(np.array(rows, dtype=np.float32))


def _maxsim(q: Any, weights: Any, passage: Any) -> float:
    """MaxSim written out, the brute force: each question token's best cosine
    with any of the passage's tokens, their weighted mean; 0 for no tokens."""
    if len(passage) == 0:
        return 0.0
    best = [max(float(qi @ pt) for pt in passage) for qi in q]
    return sum(b * float(w) for b, w in zip(best, weights, strict=True)) / float(weights.sum())


def _scores(q: Any, weights: Any, passages: Any) -> list[float]:
    """The product's reading of each passage: ``mean_best`` of ``best_matches``."""
    return [mean_best(best_matches(q, p), weights) for p in passages]


def test_the_reading_is_the_weighted_mean_of_each_question_tokens_best_match() -> None:
    rng = np.random.default_rng(0)
    q = _unit(*rng.normal(size=(4, 6)).tolist())
    passages = [_unit(*rng.normal(size=(n, 6)).tolist()) for n in (1, 3, 7)]
    weights = np.array([1, 0, 1, 1], dtype=np.float32)
    got = _scores(q, weights, passages)
    for j, p in enumerate(passages):
        best = [max(float(qi @ pt) for pt in p) for qi in q]
        want = sum(b * w for b, w in zip(best, weights, strict=True)) / weights.sum()
        assert got[j] == pytest.approx(want, abs=1e-6)


def test_the_reading_rewards_a_passage_that_meets_every_question_token() -> None:
    q = _unit([1, 0, 0], [0, 1, 0])
    both = _unit([0, 1, 0], [1, 0, 0], [0, 0, 1])  # each question token has its match
    one = _unit([1, 0, 0], [1, 0.1, 0])  # the topic, twice; the second token unmet
    scores = _scores(q, np.ones(2, dtype=np.float32), [one, both, np.zeros((0, 3), np.float32)])
    assert scores[1] == pytest.approx(1.0)
    assert scores[0] < scores[1]
    assert scores[2] == 0.0  # an empty passage


def test_question_weights_keep_content_words_only() -> None:
    words = ["what", "does", "psi", "lo", "cy", "bin", "bind", "?"]
    assert question_weights(words).tolist() == [0, 0, 1, 1, 1, 1, 1, 0]
    # A question of stopwords alone keeps every token rather than none.
    assert question_weights(["what", "is", "it", "?"]).tolist() == [1, 1, 1, 1]


def test_real_tokens_drop_cls_sep_and_padding() -> None:
    text = "Zinc helps"
    tokens = np.array([[9, 9], [3, 4], [0, 2], [9, 9]], dtype=np.float32)  # [CLS] zinc helps [SEP]
    offsets = [(0, 0), (0, 4), (5, 10), (0, 0), (0, 0), (0, 0)]  # two padding offsets too
    vectors, words = real_tokens(TokenVectors(np.zeros(2, np.float32), tokens, offsets), text)
    assert words == ["zinc", "helps"]
    assert vectors == pytest.approx(np.array([[0.6, 0.8], [0.0, 1.0]]))


def test_span_bits_keep_each_spans_content_words_as_signs() -> None:
    """Pure: against a loop written out, on hand-made token vectors."""
    text = "Zinc helps sleep. It is in oysters."
    offsets = [(0, 0), (0, 4), (5, 10), (11, 16), (16, 17), (18, 20), (21, 23), (24, 26)]
    offsets += [(27, 34), (34, 35), (0, 0)]  # [CLS] zinc helps sleep . it is in oysters . [SEP]
    rng = np.random.default_rng(3)
    tokens = rng.normal(size=(len(offsets), 10)).astype(np.float32)
    spans = [(0, 17), (18, 35)]
    got = span_bits(tokens, offsets, text, span_rows(offsets, len(tokens), spans))
    want_rows = [[1, 2, 3], [8]]  # content words: zinc helps sleep | oysters
    assert got.counts.tolist() == [3, 1]
    want = np.concatenate([tokens[r] > 0 for r in want_rows])
    assert np.array_equal(np.unpackbits(got.bits, axis=1, count=10).astype(bool), want)
    assert got.bits.shape == (4, width(10))
    assert [len(b) for b in got.split()] == [3, 1] and empty(width(10)).split() == []
    assert np.array_equal(np.concatenate(got.split()), got.bits)
    # Back as unit vectors: each component +-1/sqrt(dim), signs kept.
    back = unpack(got.bits, 10)
    assert np.allclose(np.linalg.norm(back, axis=1), 1)
    assert np.array_equal(back > 0, want)
    # A passage's sentences out of a stored array, and stored arrays joined.
    joined = concat([got, got], width(10))
    starts = np.concatenate([[0], np.cumsum(joined.counts)]).astype(np.int64)
    second = sentences_of(joined.bits, starts, 1, 2)  # the 1st's second sentence, the 2nd's first
    assert second.counts.tolist() == [1, 3]
    assert np.array_equal(second.bits, np.concatenate([got.bits[3:], got.bits[:3]]))
    assert sentences_of(joined.bits, starts, 2, 0).bits.shape == (0, width(10))


def test_reorder_moves_the_head_only_and_breaks_ties_by_first_stage() -> None:
    first = [(7, 0.75), (8, 0.5), (9, 0.25), (3, 0.125)]  # exact in binary: ties are ties
    ranked = [Ranked(row, 0.5, 0.0, fused) for row, fused in first]
    # Row 9's token score lifts it over both; 7 and 8 then tie and keep their order.
    out = reorder(ranked, np.array([0.0, 0.25, 1.0], dtype=np.float32), weight=1.0)
    assert [r.row for r in out] == [9, 7, 8, 3]
    assert out[0] is ranked[2]  # first-stage scores kept
    assert [r.row for r in reorder(ranked, np.zeros(3, np.float32), 1.0)] == [7, 8, 9, 3]


def test_nearby_is_the_row_and_up_to_around_either_side() -> None:
    rows = [7, 3, 9, 4, 8, 6]  # a document's rows in text order, not row order
    assert nearby(rows, 9, 2) == [7, 3, 9, 4, 8]
    assert nearby(rows, 7, 2) == [7, 3, 9]
    assert nearby(rows, 6, 1) == [8, 6]
    assert nearby(rows, 9, 0) == [9]
    assert nearby(rows, 5, 2) == [5]  # not among them: alone


def test_cosines_from_bits_are_those_of_the_unpacked_vectors() -> None:
    rng = np.random.default_rng(5)
    q = normalise(rng.normal(size=(3, 20)).astype(np.float32))
    bits = np.packbits(rng.normal(size=(7, 20)) > 0, axis=1)
    np.testing.assert_allclose(cosines(q, bits), q @ unpack(bits, 20).T, atol=1e-6)
    rows = [
        TokenBits(bits[:4], np.array([1, 3], np.int32)),
        empty(bits.shape[1]),
        TokenBits(bits[4:], np.array([3], np.int32)),
    ]
    got = rows_best(q, rows)
    np.testing.assert_allclose(got[0], best_matches(q, unpack(bits[:4], 20)), atol=1e-6)
    assert np.isneginf(got[1]).all()
    np.testing.assert_allclose(got[2], best_matches(q, unpack(bits[4:], 20)), atol=1e-6)


def test_reading_rows_together_is_the_max_of_each_rows_best_matches() -> None:
    rng = np.random.default_rng(3)
    q = normalise(rng.normal(size=(4, 8)).astype(np.float32))
    weights = np.array([1, 0, 1, 1], np.float32)
    rows = [normalise(rng.normal(size=(n, 8)).astype(np.float32)) for n in (5, 0, 3)]
    together = _maxsim(q, weights, np.concatenate(rows))
    best = np.max([best_matches(q, r) for r in rows], axis=0)
    assert mean_best(best, weights) == pytest.approx(float(together), abs=1e-6)
    # No tokens anywhere: 0, as the brute force gives an empty passage.
    assert mean_best(best_matches(q, rows[1]), weights) == 0.0
    assert _maxsim(q, weights, rows[1]) == 0.0


QUESTION = "Which brain rhythm did the ketamine study in mice find?"


class _NoTokens:
    """The seed's real backend, but keeping no tokens (as Milvus): the
    re-reading must embed its candidates again."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def token_bits(self, row: int) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def _around(idx: Any, row: int, around: int) -> list[int]:
    """The rows read with ``row``, found the long way: every row of its
    document in text order, those within ``around`` positions of it, a wiki
    passage's only in its section."""
    p = idx.backend.passage(row)
    rows = sorted(
        (r for r in range(len(idx)) if idx.backend.passage(r).document_id == p.document_id),
        key=lambda r: idx.backend.passage(r).sentences[0].start,
    )
    at = rows.index(row)
    near = [r for j, r in enumerate(rows) if abs(j - at) <= around]
    if p.kind == "wiki":
        return [r for r in near if idx.backend.passage(r).section == p.section]
    return near


def _brute(
    idx: Any, rows: list[Ranked], stored: bool, question: str = "", weight: float = 0.5
) -> dict[int, float]:
    """Each candidate's fused + weight x MaxSim, the passage's tokens read from
    its stored bits with those of the rows around it (``_around``), or through
    the model alone (no batch, no padding) where none are stored."""
    question = question or QUESTION
    qv, qw = real_tokens(idx.embedder.token_vectors([question])[0], question)
    weights = question_weights(qw)
    by_row = {}
    for r in rows:
        if stored:
            parts = [idx.backend.token_bits(x) for x in _around(idx, r.row, 2)]
            pv = unpack(concat(parts, parts[0].bits.shape[1]).bits, qv.shape[1])
        else:
            text = idx.backend.passage(r.row).embed_text()
            pv, _ = real_tokens(idx.embedder.token_vectors([text])[0], text)
        by_row[r.row] = r.fused + weight * _maxsim(qv, weights, pv)
    return by_row


@pytest.mark.parametrize("stored", [True, False], ids=["stored tokens", "embedded again"])
def test_rerank_scores_match_brute_force(seed_index: Any, stored: bool) -> None:
    idx = seed_index if stored else replace(seed_index, backend=_NoTokens(seed_index.backend))
    q = idx.embed(QUESTION)
    first = ranking(idx, QUESTION, q, 30, mode="hybrid").ranked
    second = rerank(idx, QUESTION, first, RerankSettings(top=12, weight=0.5))
    # Only the first 12 move, and they stay the same 12.
    assert {r.row for r in second[:12]} == {r.row for r in first[:12]}
    assert second[12:] == first[12:]
    by_row = _brute(idx, first[:12], stored)
    want = sorted(by_row, key=lambda row: -by_row[row])
    got = [r.row for r in second[:12]]
    # The same passages, so the same scores up to float noise: the order falls
    # by them.
    scores = [by_row[row] for row in got]
    assert all(a >= b - 1e-4 for a, b in itertools.pairwise(scores))
    assert by_row[got[0]] == pytest.approx(by_row[want[0]], abs=1e-4)


# Asked of the written transcripts: the NMDA sentence is said a minute and a
# half after the dissociation one, so windows around both read more of it.
TRANSCRIPT_QUESTION = "Why does ketamine cause dissociation through the NMDA receptor?"


def test_rerank_reads_transcript_windows_with_their_neighbours_as_brute_force(
    ui_index: Any,
) -> None:
    idx = ui_index
    q = idx.embed(TRANSCRIPT_QUESTION)
    first = ranking(idx, TRANSCRIPT_QUESTION, q, 30, mode="hybrid").ranked
    assert sum(idx.backend.passage(r.row).kind == "transcript" for r in first[:8]) >= 4
    settings = RerankSettings(top=8, weight=0.75, around=2)
    second = rerank(idx, TRANSCRIPT_QUESTION, first, settings)
    by_row = _brute(idx, first[:8], True, TRANSCRIPT_QUESTION, 0.75)
    got = [r.row for r in second[:8]]
    scores = [by_row[row] for row in got]
    assert all(a >= b - 1e-4 for a, b in itertools.pairwise(scores))
    # Each window is read with more than itself, and the context is the same
    # whichever way it is found.
    for r in first[:8]:
        around = context_rows(idx, r.row, 2)
        assert around == _around(idx, r.row, 2)
        if idx.backend.passage(r.row).kind == "transcript":
            assert len(around) > 1
    alone = rerank(idx, TRANSCRIPT_QUESTION, first, replace(settings, around=0))
    assert [context_rows(idx, r.row, 0) for r in first[:3]] == [[r.row] for r in first[:3]]
    assert {r.row for r in alone[:8]} == {r.row for r in first[:8]}


def test_the_stored_tokens_are_the_signs_of_each_sentences_content_words(
    seed_index: Any,
) -> None:
    """What a build stored for a passage, against the model run on it alone:
    the content words of each sentence, the sign of each dimension."""
    idx = seed_index
    for row in range(len(idx)):
        p = idx.backend.passage(row)
        text, spans = embed_input(p)
        tv = idx.embedder.token_vectors([text])[0]
        stored = idx.backend.token_bits(row)
        words = [
            [
                text[a:b]
                for a, b in tv.offsets
                if b > a and lo <= a and b <= hi and is_content(text[a:b])
            ]
            for lo, hi in spans
        ]
        assert stored.counts.tolist() == [len(w) for w in words]
        want = span_bits(tv.tokens, tv.offsets, text, span_rows(tv.offsets, len(tv.tokens), spans))
        same = np.unpackbits(stored.bits) == np.unpackbits(want.bits)
        assert same.mean() > 0.999  # a component within float noise of 0 may flip


# A question whose first five the re-reading orders differently on the seed,
# so a query path that ignored the setting fails.
MOVED = "Why is ketamine not a first-line treatment?"


def test_the_query_path_rereads_by_default_and_not_where_turned_off(seed_index: Any) -> None:
    params = parse({"q": MOVED, "k": 5})
    plain = run(seed_index, params, with_answer=True, options=Options(rerank=RerankSettings(0)))
    reread = run(seed_index, params, with_answer=True)
    assert [h.row for h in reread.hits] != [h.row for h in plain.hits]
    # Scores stay the dense cosine (abstention and weak marks are calibrated on
    # it), so the same passages keep the same score; only the order may change.
    assert not reread.abstained and reread.answer
    cos = {h.row: h.score for h in plain.hits}
    assert all(h.score == pytest.approx(cos[h.row]) for h in reread.hits if h.row in cos)
    assert [h.row for h in search(seed_index, MOVED, 5)] == [h.row for h in reread.hits]
    first = search(seed_index, MOVED, 5, rerank=RerankSettings(0))
    assert [h.row for h in first] == [h.row for h in plain.hits]


def test_the_setting_is_checked_and_reaches_the_query_options() -> None:
    from pydantic import ValidationError

    from server.settings import Settings

    assert Settings().query_options().rerank == RerankSettings(top=5)  # on by default
    assert Settings(rerank=0).query_options().rerank.top == 0  # off where asked
    assert Settings(rerank=20).query_options().rerank == RerankSettings(top=20)
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        Settings(rerank=101)
    assert Settings().query_options().rerank.around == 2  # neighbours read by default
    assert Settings(rerank_around=0).query_options().rerank == RerankSettings(top=5, around=0)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Settings(rerank_around=-1)


def test_eval_names_the_second_stage_it_ran(seed_index_dir: Any) -> None:
    """`podcite eval --rerank N`, or PODCITE_RERANK where the flag is absent;
    the flag wins over the setting (0 turns it off); a reach other than the
    default (PODCITE_RERANK_AROUND) is named too."""
    import json

    from typer.testing import CliRunner

    from server.cli import app
    from tests.conftest import ROOT

    questions = str(ROOT / "eval" / "wiki_questions.jsonl")
    base = ["eval", questions, "--index", str(seed_index_dir), "--mode", "hybrid", "--json"]
    for extra, env, label in (
        (["--rerank", "5"], {}, "hybrid+rerank5"),
        ([], {"PODCITE_RERANK": "7"}, "hybrid+rerank7"),
        (["--rerank", "0"], {"PODCITE_RERANK": "7"}, "hybrid"),
        ([], {"PODCITE_RERANK_AROUND": "0"}, "hybrid+rerank5-around0"),
        (["--rerank", "0"], {"PODCITE_RERANK_AROUND": "0"}, "hybrid"),
    ):
        res = CliRunner().invoke(app, [*base, *extra], env=env)
        assert res.exit_code == 0, res.output
        (report,) = json.loads(res.stdout)
        assert report["mode"] == label
        assert report["questions"] > 0


def test_a_request_asks_for_the_second_stage_or_turns_it_off(seed_index: Any) -> None:
    """``rerank`` on the request wins over the server's setting, both ways: the
    API's, the page's and the CLI's one parser takes it."""
    on, off = Options(), Options(rerank=RerankSettings(0))
    asked = run(seed_index, parse({"q": MOVED, "k": 5, "rerank": "5"}), False, off)
    by_server = run(seed_index, parse({"q": MOVED, "k": 5}), False, on)
    assert [h.row for h in asked.hits] == [h.row for h in by_server.hits]
    refused = run(seed_index, parse({"q": MOVED, "k": 5, "rerank": 0}), False, on)
    plain = run(seed_index, parse({"q": MOVED, "k": 5}), False, off)
    assert [h.row for h in refused.hits] == [h.row for h in plain.hits]
    assert [h.row for h in refused.hits] != [h.row for h in asked.hits]
    assert parse({"q": MOVED, "rerank": ""}).rerank is None  # a form's empty field: the default
    with pytest.raises(QueryError, match="rerank must be between 0 and 20"):
        parse({"q": MOVED, "rerank": 21})


def test_ask_takes_rerank_per_question(seed_index_dir: Any) -> None:
    """`podcite ask --rerank N`: checked before the model loads, and it wins
    over the setting (0 turns the re-reading off)."""
    import json

    from typer.testing import CliRunner

    from server.cli import app

    base = ["ask", MOVED, "--index", str(seed_index_dir), "-k", "5", "--json"]
    ids = {}
    for n in ("0", "5"):
        res = CliRunner().invoke(app, [*base, "--rerank", n])
        assert res.exit_code == 0, res.output
        ids[n] = [r["id"] for r in json.loads(res.stdout)["results"]]
    assert ids["0"] != ids["5"]
    bad = CliRunner().invoke(app, [*base, "--rerank", "21"])
    assert bad.exit_code != 0 and "rerank must be between 0 and 20" in bad.output
