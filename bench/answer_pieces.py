"""How often an answer sentence is a fragment of a spoken sentence.

A transcript sentence over 40 words or 30 s is cut at cues into pieces, each
with its own exact time (ingest/transcript.py); an answer now shows the chosen
piece with the pieces that finish it (index/spoken.py).  For every question of
the given files this asks the one query path (``index.query.run``, as the page,
the API and ``podcite ask`` do) and counts, among the answer sentences, those
that would show a fragment as the piece alone (begins inside a spoken sentence,
or stops before its end) and those that still do as shown (``begins_mid``,
``ends_mid``), with the words shown.

    .venv/bin/python bench/answer_pieces.py --index /tmp/lib/index eval/moment_questions.jsonl
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from index.query import SearchParams, run
from index.questions import read_questions
from index.records import AnswerSentence
from server.runtime import open_for_queries
from server.settings import Settings


def alone(a: AnswerSentence) -> tuple[bool, bool]:
    """Whether the chosen piece, shown alone, begins / ends inside a sentence."""
    piece = replace(a, through=None)
    return piece.begins_mid, piece.ends_mid


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("files", type=Path, nargs="+")
    args = ap.parse_args()
    settings = Settings(index_dir=args.index)
    index, options = open_for_queries(settings), settings.query_options()
    print(
        "| questions | answered | first: alone begins / ends mid | first: shown "
        "| bullets | fragments alone | fragments shown | words a bullet: alone / shown |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for path in args.files:
        qs = read_questions(path)
        answered = first_alone_b = first_alone_e = first_b = first_e = 0
        bullets = frag_alone = frag_shown = words_alone = words_shown = 0
        for q in qs:
            out = run(index, SearchParams(q=q.text), with_answer=True, options=options)
            if not out.answer:
                continue
            answered += 1
            b, e = alone(out.answer[0])
            first_alone_b, first_alone_e = first_alone_b + b, first_alone_e + e
            first_b += out.answer[0].begins_mid
            first_e += out.answer[0].ends_mid
            for a in out.answer:
                bullets += 1
                frag_alone += any(alone(a))
                frag_shown += a.begins_mid or a.ends_mid
                words_alone += len(a.hit.passage.sentences[a.sentence].text.split())
                words_shown += len(a.text.split())
        print(
            f"| {path.name} ({len(qs)}) | {answered} | {first_alone_b} / {first_alone_e} "
            f"| {first_b} / {first_e} | {bullets} | {frag_alone} | {frag_shown} "
            f"| {words_alone / max(bullets, 1):.1f} / {words_shown / max(bullets, 1):.1f} |"
        )


if __name__ == "__main__":
    main()
