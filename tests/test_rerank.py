"""The token-by-token second stage (index/rerank.py): its pure parts on small
hand-made vectors, checked against loops written out; then the real model on
the seed index, its scores checked against passages embedded one at a time."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from index.embedder import TokenVectors, normalise
from index.fusion import Ranked
from index.query import Options, parse, run
from index.rank import rank
from index.records import RerankSettings
from index.rerank import maxsim, question_weights, real_tokens, reorder, rerank
from index.search import search


def _unit(*rows: list[float]) -> NDArray[np.float32]:
    return normalise(np.array(rows, dtype=np.float32))


def test_maxsim_is_the_weighted_mean_of_each_question_tokens_best_match() -> None:
    rng = np.random.default_rng(0)
    q = _unit(*rng.normal(size=(4, 6)).tolist())
    passages = [_unit(*rng.normal(size=(n, 6)).tolist()) for n in (1, 3, 7)]
    weights = np.array([1, 0, 1, 1], dtype=np.float32)
    got = maxsim(q, weights, passages)
    for j, p in enumerate(passages):
        best = [max(float(qi @ pt) for pt in p) for qi in q]
        want = sum(b * w for b, w in zip(best, weights, strict=True)) / weights.sum()
        assert got[j] == pytest.approx(want, abs=1e-6)


def test_maxsim_rewards_a_passage_that_meets_every_question_token() -> None:
    q = _unit([1, 0, 0], [0, 1, 0])
    both = _unit([0, 1, 0], [1, 0, 0], [0, 0, 1])  # each question token has its match
    one = _unit([1, 0, 0], [1, 0.1, 0])  # the topic, twice; the second token unmet
    scores = maxsim(q, np.ones(2, dtype=np.float32), [one, both, np.zeros((0, 3), np.float32)])
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


def test_reorder_moves_the_head_only_and_breaks_ties_by_first_stage() -> None:
    first = [(7, 0.75), (8, 0.5), (9, 0.25), (3, 0.125)]  # exact in binary: ties are ties
    ranked = [Ranked(row, 0.5, 0.0, fused) for row, fused in first]
    # Row 9's token score lifts it over both; 7 and 8 then tie and keep their order.
    out = reorder(ranked, np.array([0.0, 0.25, 1.0], dtype=np.float32), weight=1.0)
    assert [r.row for r in out] == [9, 7, 8, 3]
    assert out[0] is ranked[2]  # first-stage scores kept
    assert [r.row for r in reorder(ranked, np.zeros(3, np.float32), 1.0)] == [7, 8, 9, 3]


QUESTION = "Which brain rhythm did the ketamine study in mice find?"


def test_rerank_scores_match_passages_embedded_one_by_one(seed_index: Any) -> None:
    idx = seed_index
    q = idx.embed(QUESTION)
    first = rank(idx, QUESTION, q, 30, mode="hybrid")
    second = rerank(idx, QUESTION, first, RerankSettings(top=12, weight=0.5))
    # Only the first 12 move, and they stay the same 12.
    assert {r.row for r in second[:12]} == {r.row for r in first[:12]}
    assert second[12:] == first[12:]
    # Brute force: each passage through the model alone (no batch, no padding).
    qv, qw = real_tokens(idx.embedder.token_vectors([QUESTION])[0], QUESTION)
    weights = question_weights(qw)
    by_row = {}
    for r in first[:12]:
        text = idx.backend.passage(r.row).embed_text()
        pv, _ = real_tokens(idx.embedder.token_vectors([text])[0], text)
        by_row[r.row] = r.fused + 0.5 * float(maxsim(qv, weights, [pv])[0])
    want = sorted(by_row, key=lambda row: -by_row[row])
    got = [r.row for r in second[:12]]
    # The same passages, so the same scores up to float noise: the order falls
    # by them.
    scores = [by_row[row] for row in got]
    assert all(a >= b - 1e-4 for a, b in itertools.pairwise(scores))
    assert by_row[got[0]] == pytest.approx(by_row[want[0]], abs=1e-4)


# A question whose first five the re-reading orders differently on the seed
# (QUESTION's it leaves as they are), so a query path that ignored the setting fails.
MOVED = "Why is ketamine not a first-line treatment?"


def test_the_query_path_reranks_when_the_settings_ask(seed_index: Any) -> None:
    params = parse({"q": MOVED, "k": 5})
    plain = run(seed_index, params, with_answer=True)
    reread = run(seed_index, params, with_answer=True, options=Options(rerank=RerankSettings(20)))
    assert [h.row for h in reread.hits] != [h.row for h in plain.hits]
    # Scores stay the dense cosine (abstention and weak marks are calibrated on
    # it), so the same passages keep the same score; only the order may change.
    assert not reread.abstained and reread.answer
    cos = {h.row: h.score for h in plain.hits}
    assert all(h.score == pytest.approx(cos[h.row]) for h in reread.hits if h.row in cos)
    direct = search(seed_index, MOVED, 5, rerank=RerankSettings(20))
    assert [h.row for h in direct] == [h.row for h in reread.hits]


def test_the_setting_is_checked_and_reaches_the_query_options() -> None:
    from pydantic import ValidationError

    from server.settings import Settings

    assert Settings().query_options().rerank.top == 0  # off unless asked
    assert Settings(rerank=20).query_options().rerank == RerankSettings(top=20)
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        Settings(rerank=101)


def test_eval_names_the_second_stage_it_ran(seed_index_dir: Any) -> None:
    """`podcite eval --rerank N`, or PODCITE_RERANK where the flag is absent;
    the flag wins over the setting (0 turns it off)."""
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
    ):
        res = CliRunner().invoke(app, [*base, *extra], env=env)
        assert res.exit_code == 0, res.output
        (report,) = json.loads(res.stdout)
        assert report["mode"] == label
        assert report["questions"] > 0
