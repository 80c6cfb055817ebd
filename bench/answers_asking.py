"""How often an answer leads with a sentence that asks a question.

The host often restates a listener's question before answering it ("So the
most common question I get is, how cold should the water be?"); that sentence
is the one most like the question and answers nothing.  For every in-scope
question of the given files this runs the one query path (``index.query.run``)
for the results, then chooses the answer over them with each given
``asks_penalty`` (``index.search.AnswerRule``), and counts the first answer
sentences and the bullets that ask (``index.spoken.asks``).  ``--show`` prints
each first answer that a penalty changes, before and after, to be read.

    .venv/bin/python bench/answers_asking.py --index /tmp/lib/index \\
        ../shared/data/eval/syn_test.jsonl eval/moment_questions.jsonl --penalties 0 0.05 0.1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from index.query import SearchParams, run
from index.questions import read_questions
from index.search import AnswerRule, answer_for
from index.spoken import asks
from server.runtime import open_for_queries
from server.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--penalties", type=float, nargs="+", default=[0.0, 0.05, 0.1])
    ap.add_argument("--show", action="store_true")
    ap.add_argument("files", type=Path, nargs="+")
    args = ap.parse_args()
    settings = Settings(index_dir=args.index)
    index, options = open_for_queries(settings), settings.query_options()
    questions = [q.text for f in args.files for q in read_questions(f) if q.in_scope]
    outcomes = [
        run(index, SearchParams(q=q), with_answer=False, options=options) for q in questions
    ]
    vectors = [index.embed(q) for q in questions]  # once, whatever the penalties
    firsts: dict[float, list[str | None]] = {}
    print("| penalty | answered | first answer sentences that ask | bullets that ask |")
    print("|---|---|---|---|")
    for penalty in args.penalties:
        rule = AnswerRule(asks_penalty=penalty)
        answered = first_asks = bullets_ask = 0
        firsts[penalty] = []
        for q, out, v in zip(questions, outcomes, vectors, strict=True):
            chosen = [] if out.abstained else answer_for(index, q, out.hits, v, -1.0, rule)
            firsts[penalty].append(chosen[0].text if chosen else None)
            if not chosen:
                continue
            answered += 1
            first_asks += asks(chosen[0].hit.passage.sentences, chosen[0].sentence)
            bullets_ask += sum(asks(a.hit.passage.sentences, a.sentence) for a in chosen)
        print(f"| {penalty} | {answered} | {first_asks} | {bullets_ask} |")
    if args.show:
        base = args.penalties[0]
        for penalty in args.penalties[1:]:
            print(f"\nfirst answers changed, {base} -> {penalty}:")
            for q, a, b in zip(questions, firsts[base], firsts[penalty], strict=True):
                if a != b:
                    print(f"  {q}\n    - {a}\n    + {b}")


if __name__ == "__main__":
    main()
