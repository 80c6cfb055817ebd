"""Validate the hand-written evaluation question files in this folder.

Checks that need only the repository always run: well-formed JSON lines, the
expected fields and types, unique ids, allowed tags, minimum counts, and every
``char`` offset into a ``corpus/`` file landing inside it where podcite's own
parser starts a sentence.

Checks against the shared evaluation data (wiki pages, Whisper transcripts,
catalog) run only when that folder exists next to the repository
(``../shared/data`` from the repository root); otherwise they are skipped.

Usage: ``python eval/check_questions.py`` (exit status 0 when all checks pass).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVAL_DIR = Path(__file__).resolve().parent
REPO_ROOT = EVAL_DIR.parent
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"

WIKI_FILE = EVAL_DIR / "wiki_questions.jsonl"
# Held-out wiki questions (w101...), written later in the same format.
FRESH_WIKI_FILE = EVAL_DIR / "wiki_questions_fresh.jsonl"
# A second held-out wiki set (w201...), written later again in the same format.
FRESH2_WIKI_FILE = EVAL_DIR / "wiki_questions_fresh2.jsonl"
# A third held-out wiki set (w301...), in the same format and held to the same minimums.
FRESH3_WIKI_FILE = EVAL_DIR / "wiki_questions_fresh3.jsonl"
# A fourth held-out wiki set (w401...), smaller, with minimums of its own.
FRESH4_WIKI_FILE = EVAL_DIR / "wiki_questions_fresh4.jsonl"
MOMENT_FILE = EVAL_DIR / "moment_questions.jsonl"
# Held-out moment questions (m101...), written later in the same format.
FRESH_MOMENT_FILE = EVAL_DIR / "moment_questions_fresh.jsonl"
# Held-out moment questions that ask for a quantity (m201...), for eval/quantity_prereg.json.
FRESH2_MOMENT_FILE = EVAL_DIR / "moment_questions_fresh2.jsonl"
OOS_FILE = EVAL_DIR / "out_of_scope.jsonl"
LOOKALIKE_FILE = EVAL_DIR / "out_of_scope_lookalikes.jsonl"
# Out-of-scope questions naming a person or product the library mentions (n001...).
NAMED_FILE = EVAL_DIR / "out_of_scope_named.jsonl"
AUDIT_FILE = EVAL_DIR / "scope_audit.jsonl"
AUDIT_LABELS = frozenset({"answered", "partly", "not"})
AUDIT_MAX_NOTE_WORDS = 20  # our own few words, never a quote

QUESTION_TAGS = frozenset({"name", "number", "term", "paraphrase"})
OOS_TAGS = frozenset({"off_topic", "lookalike", "named"})
SHARED_PREFIX = "shared:"
CORPUS_PREFIX = "corpus/"

# Minimums asked of the question sets.
MIN_WIKI = 40
MIN_WIKI_PAGES = 15  # shared wiki pages other than the seed's twin
MIN_WIKI_SPECIFIC = 8  # name / number / term questions
MIN_WIKI_PARAPHRASE = 15
MIN_FRESH_WIKI = 40
MIN_FRESH_WIKI_PAGES = 20
MIN_FRESH_WIKI_SPECIFIC = 20
MIN_FRESH_WIKI_PARAPHRASE = 12
MIN_FRESH2_WIKI = 60
MIN_FRESH2_WIKI_PAGES = 30
MIN_FRESH2_WIKI_SPECIFIC = 30
MIN_FRESH2_WIKI_PARAPHRASE = 18
MIN_FRESH4_WIKI = 40
MIN_FRESH4_WIKI_PAGES = 25
MIN_FRESH4_WIKI_SPECIFIC = 25
MIN_FRESH4_WIKI_PARAPHRASE = 12
MIN_MOMENTS = 45
MIN_MOMENT_EPISODES = 22
MIN_MOMENT_SPECIFIC = 10
MIN_FRESH_MOMENTS = 50
MIN_FRESH_MOMENT_EPISODES = 25
MIN_FRESH_MOMENT_SPECIFIC = 10
MIN_FRESH2_MOMENTS = 30
MIN_FRESH2_MOMENT_EPISODES = 15
MIN_FRESH2_MOMENT_SPECIFIC = 20
MIN_OOS = 25
MIN_OOS_LOOKALIKE = 17
MIN_LOOKALIKES = 40  # out_of_scope_lookalikes.jsonl: every question a lookalike
MIN_NAMED = 30  # out_of_scope_named.jsonl: every question tagged named
# A checked term of an out-of-scope question may occur at most this often in
# the whole library (wiki pages and transcripts together).
MAX_TERM_HITS = 5


_VIDEO_ID_RE = re.compile(r"^[A-Za-z0-9_-]{11}$")
_CUE_RE = re.compile(r"^\s*(\d+(?::\d+){1,2}\.\d+)\s+-->\s+(\d+(?::\d+){1,2}\.\d+)")
_FRONT_VIDEO_RE = re.compile(r"^videoId:\s*(\S+)\s*$", re.MULTILINE)


@dataclass
class Report:
    """Collects failures and notes while the checks run."""

    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def note(self, message: str) -> None:
        self.notes.append(message)


def read_text(path: Path) -> str:
    """Read a file exactly as the offsets were computed (no newline translation)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return fh.read()


def iter_jsonl(path: Path, report: Report) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (location, object) for each non-empty line; report malformed lines."""
    if not path.is_file():
        report.error(path.name, "file is missing")
        return
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        where = f"{path.name}:{number}"
        if not line.strip():
            report.error(where, "blank line")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.error(where, f"invalid JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            report.error(where, "line is not a JSON object")
            continue
        yield where, obj


def sentence_starts(path: Path) -> tuple[frozenset[int], str | None]:
    """Where podcite's own parser (``ingest.load``) starts a sentence in
    ``path``, as character offsets, and the parser's error where it refused
    the file.  An evidence ``char`` must be one of them: a question then
    points at a sentence the index holds, by the one rule that splits them."""
    from ingest import load

    loaded = load([path])
    starts = frozenset(s.start for d in loaded.documents for s in d.sentences)
    return starts, (str(loaded.errors[0]) if loaded.errors else None)


def parse_timestamp(value: str) -> float:
    """Seconds from ``MM:SS.mmm`` or ``H:MM:SS.mmm``."""
    seconds = 0.0
    for part in value.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def load_cues(path: Path) -> list[tuple[float, float]]:
    """(start, end) of every cue in a WebVTT file."""
    cues: list[tuple[float, float]] = []
    for line in read_text(path).splitlines():
        match = _CUE_RE.match(line)
        if match:
            cues.append((parse_timestamp(match.group(1)), parse_timestamp(match.group(2))))
    return cues


def check_common(
    where: str,
    obj: dict[str, Any],
    prefix: str,
    seen: set[str],
    allowed: frozenset[str],
    report: Report,
) -> list[str]:
    """Check id, question and tags; return the tags (empty when malformed)."""
    qid = obj.get("id")
    if not isinstance(qid, str) or not re.fullmatch(rf"{prefix}\d{{3,}}", qid):
        report.error(where, f"id must look like {prefix}001, got {qid!r}")
    elif qid in seen:
        report.error(where, f"duplicate id {qid}")
    else:
        seen.add(qid)
    question = obj.get("question")
    if not isinstance(question, str) or len(question.strip()) < 10:
        report.error(where, "question must be a non-trivial string")
    tags = obj.get("tags")
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
        report.error(where, "tags must be a non-empty list of strings")
        return []
    unknown = set(tags) - allowed
    if unknown:
        report.error(where, f"unknown tags {sorted(unknown)}")
    return list(tags)


def resolve_source(source: str) -> tuple[Path | None, bool]:
    """Map an evidence source to a path; the flag says whether it is shared data."""
    if ".." in Path(source).parts:
        return None, False
    if source.startswith(SHARED_PREFIX):
        return DATA_DIR / source[len(SHARED_PREFIX) :], True
    if source.startswith(CORPUS_PREFIX):
        return REPO_ROOT / source, False
    return None, False


@dataclass(frozen=True)
class WikiSet:
    """A wiki question file and the minimums asked of it."""

    path: Path
    min_total: int
    min_pages: int  # shared wiki pages other than the seed's twin
    min_specific: int
    min_paraphrase: int


WIKI_SETS = (
    WikiSet(WIKI_FILE, MIN_WIKI, MIN_WIKI_PAGES, MIN_WIKI_SPECIFIC, MIN_WIKI_PARAPHRASE),
    WikiSet(
        FRESH_WIKI_FILE,
        MIN_FRESH_WIKI,
        MIN_FRESH_WIKI_PAGES,
        MIN_FRESH_WIKI_SPECIFIC,
        MIN_FRESH_WIKI_PARAPHRASE,
    ),
    WikiSet(
        FRESH2_WIKI_FILE,
        MIN_FRESH2_WIKI,
        MIN_FRESH2_WIKI_PAGES,
        MIN_FRESH2_WIKI_SPECIFIC,
        MIN_FRESH2_WIKI_PARAPHRASE,
    ),
    WikiSet(
        FRESH3_WIKI_FILE,
        MIN_FRESH2_WIKI,
        MIN_FRESH2_WIKI_PAGES,
        MIN_FRESH2_WIKI_SPECIFIC,
        MIN_FRESH2_WIKI_PARAPHRASE,
    ),
    WikiSet(
        FRESH4_WIKI_FILE,
        MIN_FRESH4_WIKI,
        MIN_FRESH4_WIKI_PAGES,
        MIN_FRESH4_WIKI_SPECIFIC,
        MIN_FRESH4_WIKI_PARAPHRASE,
    ),
)


def check_wiki(report: Report, have_data: bool, wiki_set: WikiSet, seen: set[str]) -> None:
    question_file = wiki_set.path
    pages: set[str] = set()
    specific = paraphrase = total = 0
    texts: dict[str, str] = {}
    starts: dict[str, tuple[frozenset[int], str | None]] = {}
    for where, obj in iter_jsonl(question_file, report):
        total += 1
        tags = check_common(where, obj, "w", seen, QUESTION_TAGS, report)
        specific += bool({"name", "number", "term"} & set(tags))
        paraphrase += "paraphrase" in tags
        video_id = obj.get("video_id")
        if not isinstance(video_id, str) or not _VIDEO_ID_RE.match(video_id):
            report.error(where, f"bad video_id {video_id!r}")
        evidence = obj.get("evidence")
        if not isinstance(evidence, list) or not evidence:
            report.error(where, "evidence must be a non-empty list")
            continue
        for item in evidence:
            if not isinstance(item, dict):
                report.error(where, "evidence item is not an object")
                continue
            source, char = item.get("source"), item.get("char")
            if not isinstance(source, str) or isinstance(char, bool) or not isinstance(char, int):
                report.error(where, "evidence needs a string source and an integer char")
                continue
            path, shared = resolve_source(source)
            if path is None:
                report.error(
                    where,
                    f"source must start with {CORPUS_PREFIX!r} or {SHARED_PREFIX!r}: {source}",
                )
                continue
            if shared:
                if source.startswith(f"{SHARED_PREFIX}wiki/"):
                    pages.add(source)
                if not have_data:
                    continue
            if source not in texts:
                if not path.is_file():
                    report.error(where, f"missing source file {source}")
                    continue
                texts[source] = read_text(path)
                starts[source] = sentence_starts(path)
            text = texts[source]
            at, refused = starts[source]
            if not 0 <= char < len(text):
                report.error(where, f"char {char} outside {source} (length {len(text)})")
            elif refused:
                report.error(where, f"{source} does not parse: {refused}")
            elif char not in at:
                context = text[max(0, char - 20) : char + 20]
                report.error(where, f"char {char} in {source} is not a sentence start: {context!r}")
            if shared and isinstance(video_id, str):
                match = _FRONT_VIDEO_RE.search(text)
                if match and match.group(1) != video_id:
                    report.error(
                        where,
                        f"video_id {video_id} differs from {source} front matter {match.group(1)}",
                    )
    name = question_file.name
    report.note(f"{name}: {total} questions, {len(pages)} shared wiki pages")
    if total < wiki_set.min_total:
        report.error(name, f"only {total} questions (want {wiki_set.min_total})")
    other_pages = {p for p in pages if not p.endswith("/experimental_treatments_for_depression.md")}
    if len(other_pages) < wiki_set.min_pages:
        report.error(
            name,
            f"only {len(other_pages)} pages besides the seed twin (want {wiki_set.min_pages})",
        )
    if specific < wiki_set.min_specific:
        report.error(
            name, f"only {specific} name/number/term questions (want {wiki_set.min_specific})"
        )
    if paraphrase < wiki_set.min_paraphrase:
        report.error(
            name, f"only {paraphrase} paraphrase questions (want {wiki_set.min_paraphrase})"
        )


def load_catalog() -> dict[str, str]:
    """Transcript file name -> YouTube id."""
    with open(DATA_DIR / "catalog" / "transcripts.csv", newline="", encoding="utf-8") as fh:
        return {row["file"]: row["youtube_id"] for row in csv.DictReader(fh)}


@dataclass(frozen=True)
class MomentSet:
    """A moment question file and the minimums asked of it."""

    path: Path
    min_total: int
    min_episodes: int
    min_specific: int


MOMENT_SETS = (
    MomentSet(MOMENT_FILE, MIN_MOMENTS, MIN_MOMENT_EPISODES, MIN_MOMENT_SPECIFIC),
    MomentSet(
        FRESH_MOMENT_FILE,
        MIN_FRESH_MOMENTS,
        MIN_FRESH_MOMENT_EPISODES,
        MIN_FRESH_MOMENT_SPECIFIC,
    ),
    MomentSet(
        FRESH2_MOMENT_FILE,
        MIN_FRESH2_MOMENTS,
        MIN_FRESH2_MOMENT_EPISODES,
        MIN_FRESH2_MOMENT_SPECIFIC,
    ),
)


def check_moments(report: Report, have_data: bool, moment_set: MomentSet, seen: set[str]) -> None:
    question_file = moment_set.path
    files: set[str] = set()
    specific = total = 0
    catalog = load_catalog() if have_data else {}
    cue_cache: dict[str, list[tuple[float, float]]] = {}
    for where, obj in iter_jsonl(question_file, report):
        total += 1
        tags = check_common(where, obj, "m", seen, QUESTION_TAGS, report)
        specific += bool({"name", "number", "term"} & set(tags))
        video_id, name = obj.get("video_id"), obj.get("file")
        start, end = obj.get("answer_start"), obj.get("answer_end")
        if not isinstance(video_id, str) or not _VIDEO_ID_RE.match(video_id):
            report.error(where, f"bad video_id {video_id!r}")
        if not isinstance(name, str) or not name.endswith(".vtt") or "/" in name:
            report.error(where, f"file must be a transcript file name, got {name!r}")
            continue
        files.add(name)
        times_ok = all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
            for t in (start, end)
        )
        if not times_ok:
            report.error(where, "answer_start and answer_end must be numbers")
            continue
        assert isinstance(start, (int, float)) and isinstance(end, (int, float))
        if not 0 <= start < end:
            report.error(where, f"need 0 <= answer_start < answer_end, got {start}, {end}")
        elif end - start > 120:
            report.error(where, f"answer span of {end - start:.1f}s is too long")
        if not have_data:
            continue
        if name not in catalog:
            report.error(where, f"{name!r} is not in catalog/transcripts.csv")
        elif catalog[name] != video_id:
            report.error(where, f"video_id {video_id} but the catalog says {catalog[name]}")
        if name not in cue_cache:
            path = DATA_DIR / "transcripts" / name
            cue_cache[name] = load_cues(path) if path.is_file() else []
        cues = cue_cache[name]
        if not cues:
            report.error(where, f"no transcript cues for {name!r}")
            continue
        if end > cues[-1][1] + 1e-6:
            report.error(where, f"answer_end {end} is after the transcript ends ({cues[-1][1]})")
        if not any(abs(cue_start - start) < 1e-3 for cue_start, _ in cues):
            report.error(where, f"answer_start {start} is not the start of any cue")
    report.note(f"{question_file.name}: {total} questions, {len(files)} episodes")
    if total < moment_set.min_total:
        report.error(question_file.name, f"only {total} questions (want {moment_set.min_total})")
    if len(files) < moment_set.min_episodes:
        report.error(
            question_file.name, f"only {len(files)} episodes (want {moment_set.min_episodes})"
        )
    if specific < moment_set.min_specific:
        report.error(
            question_file.name,
            f"only {specific} name/number/term questions (want {moment_set.min_specific})",
        )


def library_text() -> str:
    """All wiki pages and transcripts, joined (for counting checked terms)."""
    paths = sorted((DATA_DIR / "wiki").rglob("*.md")) + sorted(
        (DATA_DIR / "transcripts").glob("*.vtt")
    )
    return "\n".join(read_text(p) for p in paths)


def count_word_starts(haystack: str, needle: str) -> int:
    """Occurrences of ``needle`` that begin a word (like ``\\bneedle`` in a regex, but fast)."""
    count, start = 0, haystack.find(needle)
    while start != -1:
        before = haystack[start - 1] if start else " "
        if not (before.isalnum() or before == "_"):
            count += 1
        start = haystack.find(needle, start + 1)
    return count


def check_out_of_scope(report: Report, have_data: bool) -> None:
    terms: dict[str, list[str]] = {}
    total, lookalike = _out_of_scope_file(OOS_FILE, "o", report, terms)
    if total < MIN_OOS:
        report.error(OOS_FILE.name, f"only {total} questions (want {MIN_OOS})")
    if lookalike < MIN_OOS_LOOKALIKE:
        report.error(
            OOS_FILE.name, f"only {lookalike} lookalike questions (want {MIN_OOS_LOOKALIKE})"
        )
    total, lookalike = _out_of_scope_file(LOOKALIKE_FILE, "l", report, terms)
    if lookalike < MIN_LOOKALIKES or lookalike != total:
        report.error(
            LOOKALIKE_FILE.name,
            f"{lookalike} lookalike questions of {total} (want {MIN_LOOKALIKES}, all lookalike)",
        )
    total, named = _out_of_scope_file(NAMED_FILE, "n", report, terms, tag="named")
    if named < MIN_NAMED or named != total:
        report.error(
            NAMED_FILE.name,
            f"{named} named questions of {total} (want {MIN_NAMED}, all named)",
        )
    if not have_data:
        return
    library = library_text().lower()
    for where, checked in terms.items():
        for term in checked:
            hits = count_word_starts(library, term.lower())
            if hits > MAX_TERM_HITS:
                report.error(where, f"checked term {term!r} occurs {hits} times in the library")


def _out_of_scope_file(
    path: Path,
    prefix: str,
    report: Report,
    terms: dict[str, list[str]],
    tag: str = "lookalike",
) -> tuple[int, int]:
    """Check one out-of-scope file's rows; collect their checked terms; return
    (questions, rows tagged ``tag``).  Lookalike and named rows need checked terms."""
    seen: set[str] = set()
    lookalike = total = 0
    for where, obj in iter_jsonl(path, report):
        total += 1
        tags = check_common(where, obj, prefix, seen, OOS_TAGS, report)
        checked = obj.get("checked_terms")
        lookalike += tag in tags
        if {"lookalike", "named"} & set(tags) and (
            not isinstance(checked, list)
            or not checked
            or not all(isinstance(t, str) and t for t in checked)
        ):
            report.error(
                where, "a lookalike or named question needs a non-empty checked_terms list"
            )
            continue
        if isinstance(checked, list):
            terms[where] = [t for t in checked if isinstance(t, str) and t]
    report.note(f"{path.name}: {total} questions, {lookalike} {tag}")
    return total, lookalike


def check_scope_audit(report: Report, have_data: bool) -> None:
    """Each audited question names a line of a shared scope file by
    ``<stem>:<line>``; the label decides ``in_scope`` (an out-of-scope question
    the library answers is in scope; an in-scope one it does not cover is out),
    and ``sha256`` must match the text on that line."""
    rows: dict[str, tuple[str, str]] = {}
    for where, obj in iter_jsonl(AUDIT_FILE, report):
        qid, label, sha = obj.get("id"), obj.get("label"), obj.get("sha256")
        if not isinstance(qid, str) or qid.rpartition(":")[0] not in (
            "relevant_qs",
            "irrelevant_qs",
        ):
            report.error(where, f"id {qid!r} is not relevant_qs:<line> or irrelevant_qs:<line>")
            continue
        if qid in rows:
            report.error(where, f"duplicate id {qid}")
        if label not in AUDIT_LABELS:
            report.error(where, f"label {label!r} is not one of {sorted(AUDIT_LABELS)}")
            continue
        out_file = qid.startswith("irrelevant")
        want = label == "answered" if out_file else label != "not"
        if obj.get("in_scope") is not want:
            report.error(where, f"in_scope must be {want} for a {label!r} {qid.split(':')[0]} row")
        note = obj.get("note")
        if not isinstance(note, str) or not 0 < len(note.split()) <= AUDIT_MAX_NOTE_WORDS:
            report.error(where, f"note must be 1-{AUDIT_MAX_NOTE_WORDS} words of our own")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{12}", sha):
            report.error(where, "sha256 must be 12 hex digits")
            continue
        rows[qid] = (where, sha)
    report.note(f"{AUDIT_FILE.name}: {len(rows)} audited questions")
    if not have_data:
        return
    for stem in ("relevant_qs", "irrelevant_qs"):
        lines = read_text(DATA_DIR / "eval" / f"{stem}.jsonl").splitlines()
        for qid, (where, sha) in rows.items():
            if not qid.startswith(stem + ":"):
                continue
            n = int(qid.rpartition(":")[2])
            if not 1 <= n <= len(lines) or not lines[n - 1].strip():
                report.error(where, f"{qid}: no question on that line")
                continue
            text = str(json.loads(lines[n - 1])["question"])
            if hashlib.sha256(text.encode("utf-8")).hexdigest()[:12] != sha:
                report.error(where, f"{qid}: the question on that line is not the one audited")


def main() -> int:
    report = Report()
    have_data = DATA_DIR.is_dir()
    if not have_data:
        report.note(f"shared data not found at {DATA_DIR}: skipping checks against it")
    # Each kind's ids must be unique across all of its files (first and fresh ones).
    wiki_ids: set[str] = set()
    for wiki_set in WIKI_SETS:
        check_wiki(report, have_data, wiki_set, wiki_ids)
    moment_ids: set[str] = set()
    for moment_set in MOMENT_SETS:
        check_moments(report, have_data, moment_set, moment_ids)
    check_out_of_scope(report, have_data)
    check_scope_audit(report, have_data)
    for note in report.notes:
        print(note)
    for error in report.errors:
        print(f"ERROR {error}", file=sys.stderr)
    print("FAILED" if report.errors else "OK", f"({len(report.errors)} errors)")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
