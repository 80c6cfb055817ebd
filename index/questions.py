"""Question files and what counts as a hit: the gold side of ``podcite eval``.

What counts as a hit, by question file:

- chapter (syn_test.jsonl, qna_test.jsonl: ``video_id``, ``time_start``,
  ``time_end`` as "M:SS"/"H:MM:SS"): a result of that episode whose cited time
  (``Hit.time``) is exact and inside the chapter.  A wiki result citing only its
  section's approximate time counts only at episode level.
- moment (eval/moment_questions.jsonl): the same, in ``[answer_start - 30, answer_end]``
  (a citation may land a little early: the player starts before the answer).
- evidence (eval/wiki_questions.jsonl): a result whose passage file ends with the
  evidence source path and whose ``[start, end)`` holds the evidence ``char``.
- an answer sentence (``judge_answer``): for evidence questions the evidence
  sentence itself; for moment questions one whose time lands on the moment.
- scope (relevant_qs, irrelevant_qs, eval/out_of_scope.jsonl): no gold; the top
  score of each question is kept, to calibrate the abstention threshold.  A hand
  audit may correct their labels (``audit_scope``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from index.records import AnswerSentence, Hit
from ingest.clock import parse_clock
from ingest.errors import PodciteError

QuestionKind = Literal["chapter", "moment", "evidence", "scope"]
MOMENT_SLACK = 30.0
_OUT_OF_SCOPE_FILES = ("irrelevant", "out_of_scope")


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    text: str
    kind: QuestionKind
    video_id: str | None = None
    start: float | None = None  # gold window in seconds, inclusive (chapter, moment)
    end: float | None = None
    evidence: tuple[tuple[str, int], ...] = ()  # (path under its root, char offset)
    in_scope: bool = True


def _source_path(source: str) -> str:
    for prefix in ("shared:", "corpus/"):
        if source.startswith(prefix):
            return source[len(prefix) :]
    return source


def question_from(row: dict[str, Any], default_id: str, in_scope: bool = True) -> Question:
    text, vid, qid = str(row["question"]), row.get("video_id"), str(row.get("id") or default_id)
    if "evidence" in row:
        ev = tuple((_source_path(e["source"]), int(e["char"])) for e in row["evidence"])
        return Question(qid, text, "evidence", vid, evidence=ev)
    if "answer_start" in row:
        start = max(0.0, float(row["answer_start"]) - MOMENT_SLACK)
        return Question(qid, text, "moment", vid, start, float(row["answer_end"]))
    if "time_start" in row:
        start, end = parse_clock(row["time_start"]), parse_clock(row["time_end"])
        return Question(qid, text, "chapter", vid, start, end)
    return Question(qid, text, "scope", vid, in_scope=bool(row.get("in_scope", in_scope)))


def read_questions(path: Path) -> list[Question]:
    """Questions of a JSON-lines file, any of the formats above (told apart by
    their fields; for scope questions, "irrelevant"/"out_of_scope" in the file
    name means out of scope unless a row says ``in_scope``)."""
    in_scope = not any(w in path.stem for w in _OUT_OF_SCOPE_FILES)
    out: list[Question] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    out.append(question_from(json.loads(line), f"{path.stem}:{n}", in_scope))
                except (ValueError, KeyError, TypeError) as exc:
                    raise PodciteError(f"{path}:{n}: not a question: {exc}") from exc
    return out


def audit_scope(questions: Sequence[Question], path: Path) -> list[Question]:
    """``questions`` with their in-scope labels as a hand audit gives them.

    An audit file (JSON lines) names questions by id (``<file stem>:<line>`` for
    files without ids), with ``"in_scope": true|false`` and ``"sha256"``, the
    first 12 hex digits of the question text's SHA-256, so that an audit of an
    edited file fails instead of relabelling other questions (the text itself
    is not copied).  Other fields (label, note, where) are for people.  Rows for
    files not given are ignored.  Used to measure abstention against shared sets
    whose labels are wrong in places (eval/README.md)."""
    by_id = {q.id: q for q in questions}
    files = {qid.rpartition(":")[0] for qid in by_id}
    verdicts: dict[str, bool] = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                qid, in_scope, sha = str(row["id"]), bool(row["in_scope"]), str(row["sha256"])
            except (ValueError, KeyError, TypeError) as exc:
                raise PodciteError(f"{path}:{n}: not an audit row: {exc}") from exc
            if qid.rpartition(":")[0] not in files:
                continue
            q = by_id.get(qid)
            if q is None or text_sha(q.text) != sha:
                raise PodciteError(f"{path}:{n}: question {qid} is not the one audited")
            verdicts[qid] = in_scope
    return [replace(q, in_scope=verdicts.get(q.id, q.in_scope)) for q in questions]


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _path_ends_with(path: str, tail: str) -> bool:
    p, t = Path(path).parts, Path(tail).parts
    return len(p) >= len(t) and p[len(p) - len(t) :] == t


def judge(q: Question, hit: Hit) -> tuple[bool, bool]:
    """(hit, episode hit) of one result for one question."""
    ep = hit.passage.episode
    episode = q.video_id is not None and ep is not None and ep.id == q.video_id
    if q.kind == "evidence":
        p = hit.passage
        exact = any(
            _path_ends_with(p.path, src) and p.start <= char < p.end for src, char in q.evidence
        )
        return exact, episode
    if q.kind in ("chapter", "moment") and episode and q.start is not None and q.end is not None:
        t = hit.time
        return t is not None and t.exact and q.start <= t.seconds <= q.end, True
    return False, episode


def judge_answer(q: Question, a: AnswerSentence) -> bool | None:
    """Whether an answer sentence is the question's evidence sentence (None:
    the question has none to judge by).  Evidence questions: the very sentence
    (its source span holds the evidence offset).  Moment questions: a sentence
    whose shown time (``AnswerSentence.time``, as the answer box shows it) is
    exact and lands on the moment, as a result's must."""
    p = a.hit.passage
    if q.kind == "evidence":
        s = p.sentences[a.sentence]
        return any(_path_ends_with(p.path, src) and s.start <= c < s.end for src, c in q.evidence)
    if q.kind == "moment" and q.start is not None and q.end is not None:
        t = a.time
        same = p.episode is not None and p.episode.id == q.video_id
        return same and t is not None and t.exact and q.start <= t.seconds <= q.end
    return None


def gold_in_index(q: Question, episodes: set[str], paths: list[str]) -> bool:
    if q.kind == "evidence":
        return any(_path_ends_with(p, src) for src, _ in q.evidence for p in paths)
    if q.kind in ("chapter", "moment"):
        return q.video_id in episodes
    return True
