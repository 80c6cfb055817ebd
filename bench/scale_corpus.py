"""Synthetic scale corpus: index directories of 10k, 100k and 1M passages shaped
like the real library's, written through ``index.store.writing`` (the store's
batch writer), with nothing embedded.

    nice -n 19 .venv/bin/python bench/scale_corpus.py --source /tmp/lib/index \\
        --out /tmp/scale --sizes 10000 100000 1000000 [--check]

How, from the whole-library index (1,208 documents, 32,286 passages):

- **Shape.**  Every synthetic document copies a real document (its template):
  kind, title, heading trails, number of passages, sentences a passage and,
  for a transcript, its sentence times and the overlap of its windows (window
  j covers the same sentence positions as the template's window j).  So the
  kinds (60% transcript windows, 40% wiki paragraphs), lengths, sentences a
  passage and passages a document are the real ones.  Copy c of the library
  is the c-th pass over the templates (31 passes and a part make 10^6); 10k is
  a random part of the first pass.
- **Text.**  A synthetic document's sentences are real sentences of the same
  kind, recombined: runs of 2-12 consecutive sentences from random places
  (runs never cross a document), so a passage reads locally like one and
  mixes topics the way a neighbouring window does.
- **Vectors.**  Sentence vectors are the real sentences' (float16).  A
  passage vector is the length-weighted mean of its sentence vectors
  (``index.vectors.pool``: how podcite makes every transcript window's vector)
  plus Gaussian noise of norm ``--noise`` (0.3: cosine ~0.96 to the mean),
  renormalised, so passages that share sentences still get distinct vectors.
- **Episodes and dates.**  Copy c of a real episode is a new episode
  (``<id>~<c>``, same title), dated the real date moved back c x 97 days
  modulo four years; a filter by episode, kind or date admits shares like the
  real library's.
- **BM25.**  Each real sentence, title and heading is tokenised once
  (``index.keyword.normalise_tokens``); a passage's tokens are its title's,
  headings' and sentences' (what normalising its whole text gives, but for
  the rare joins across a sentence boundary).  The matrix is podcite's own
  ``index.keyword.bm25_matrix`` (bm25s's Lucene formula, k1 1.5, b 0.75, in
  NumPy) over token ids, saved as bm25s saves its own; ``--check`` asserts
  it equals bm25s's on the smallest size.
  (bm25s's own builder holds every token as a Python string: ~5 GB at 10^6.)

Memory: passages are generated and written a batch at a time; what is held is
the source (~0.5 GB) and the BM25 postings (~1.5 GB at 10^6).  Disk: ~12 GB at
10^6 (passages 2.5 GB, sentence vectors 5.4 GB, vectors 1.5 GB, the HNSW graph
with its copy of the vectors 1.8 GB, BM25 0.5 GB).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index import store  # noqa: E402
from index.keyword import KeywordIndex, bm25_matrix, normalise_tokens  # noqa: E402
from ingest.records import Episode, Passage, Sentence, Time, passage_id  # noqa: E402

BATCH = 5000


@dataclass
class Template:
    """A real document's shape."""

    id: str
    title: str
    kind: str
    channel: str | None
    episode: Episode | None
    times: list[tuple[Time | None, float | None]]  # per distinct sentence position
    passages: list[tuple[tuple[str, ...], Time | None, list[int]]]  # section, anchor, positions


@dataclass
class Source:
    model: str
    dim: int
    manifest: dict[str, object]
    text: list[str] = field(default_factory=list)  # distinct real sentences
    vec: list[NDArray[np.float16]] = field(default_factory=list)
    tokens: list[NDArray[np.int32]] = field(default_factory=list)
    pool: dict[str, list[int]] = field(default_factory=dict)  # sentence ids by kind, doc order
    doc_end: dict[str, list[int]] = field(default_factory=dict)  # pool index of the doc's end
    templates: list[Template] = field(default_factory=list)
    vocab: dict[str, int] = field(default_factory=dict)
    _tok_cache: dict[str, NDArray[np.int32]] = field(default_factory=dict)

    def tok(self, text: str) -> NDArray[np.int32]:
        got = self._tok_cache.get(text)
        if got is None:
            ids = [self.vocab.setdefault(t, len(self.vocab)) for t in normalise_tokens(text)]
            got = self._tok_cache[text] = np.array(ids, dtype=np.int32)
        return got


def load_source(path: Path) -> Source:
    stored = store.load(path, verify=False, searchable=False)
    src = Source(stored.model, int(stored.manifest["dimension"]), stored.manifest)
    by_doc: dict[str, list[int]] = {}
    for row, doc in enumerate(stored.columns.document):
        by_doc.setdefault(stored.columns.documents[doc], []).append(row)
    for doc_id, rows in by_doc.items():
        ps = sorted(((stored.passages[r], r) for r in rows), key=lambda x: x[0].start)
        first = ps[0][0]
        position: dict[int, int] = {}
        times: list[tuple[Time | None, float | None]] = []
        shaped = []
        src.pool.setdefault(first.kind, [])
        src.doc_end.setdefault(first.kind, [])
        for p, r in ps:
            vecs = stored.sentence_vectors_of(r)
            where = []
            for s, v in zip(p.sentences, vecs, strict=True):
                if s.start not in position:
                    position[s.start] = len(times)
                    times.append((s.time, s.end_time))
                    src.pool[first.kind].append(len(src.text))
                    src.text.append(s.text)
                    src.vec.append(np.asarray(v, dtype=np.float16))
                    src.tokens.append(src.tok(s.text))
                where.append(position[s.start])
            shaped.append((p.section, p.anchor, where))
        end = len(src.pool[first.kind])
        src.doc_end[first.kind].extend([end] * len(times))
        src.templates.append(
            Template(doc_id, first.document_title, first.kind, first.channel, first.episode,
                     times, shaped)
        )  # fmt: skip
    return src


def shifted(ep: Episode | None, copy: int) -> Episode | None:
    if ep is None or copy == 0:
        return ep
    day = None
    if ep.date:
        back = timedelta(days=(copy * 97) % 1461)
        day = (date.fromisoformat(ep.date[:10]) - back).isoformat()
    return replace(ep, id=f"{ep.id}~{copy}", date=day)


def plan(src: Source, n: int, rng: np.random.Generator) -> list[tuple[Template, int, int]]:
    """(template, copy, passages taken) until ``n`` passages; the last one cut short."""
    out: list[tuple[Template, int, int]] = []
    total, copy = 0, 0
    while total < n:
        for i in rng.permutation(len(src.templates)):
            t = src.templates[int(i)]
            take = min(len(t.passages), n - total)
            out.append((t, copy, take))
            total += take
            if total == n:
                break
        copy += 1
    return out


def draw(src: Source, kind: str, length: int, rng: np.random.Generator) -> list[int]:
    """``length`` real sentence ids of ``kind``: runs of 2-12 from random places."""
    pool, ends = src.pool[kind], src.doc_end[kind]
    out: list[int] = []
    while len(out) < length:
        s = int(rng.integers(len(pool)))
        e = min(s + int(rng.integers(2, 13)), ends[s])
        out.extend(pool[s:e])
    return out[:length]


class Bm25:
    """bm25s's eager Lucene BM25 matrix, built from token ids with NumPy."""

    def __init__(self) -> None:
        self.chunks: list[tuple[NDArray[np.int32], NDArray[np.int32]]] = []
        self._open: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
        self.lengths: list[int] = []
        self.per_doc: list[int] = []

    def add(self, ids: NDArray[np.int32]) -> None:
        terms, tf = np.unique(ids, return_counts=True)
        self._open.append((terms, tf))
        self.lengths.append(int(ids.size))
        self.per_doc.append(int(terms.size))
        if len(self._open) == BATCH:
            self._close()

    def _close(self) -> None:
        if self._open:
            terms = np.concatenate([t for t, _ in self._open]).astype(np.int32)
            tfs = np.concatenate([f for _, f in self._open]).astype(np.int32)
            self.chunks.append((terms, tfs))
            self._open = []

    def build(self, vocab: dict[str, int]) -> KeywordIndex:
        self._close()
        n = len(self.lengths)
        term = np.concatenate([t for t, _ in self.chunks])
        tf = np.concatenate([f for _, f in self.chunks])
        doc = np.repeat(np.arange(n, dtype=np.int32), np.array(self.per_doc, dtype=np.int64))
        self.chunks = []
        used = np.flatnonzero(np.bincount(term, minlength=len(vocab)))  # ids of terms present
        remap = np.full(len(vocab), -1, dtype=np.int32)
        remap[used] = np.arange(used.size, dtype=np.int32)
        names = {i: t for t, i in vocab.items()}
        present = {names[int(u)]: j for j, u in enumerate(used)}
        lengths = np.array(self.lengths, dtype=np.int64)
        return bm25_matrix(remap[term], doc, tf, lengths, present)


Plan = list[tuple[Template, int, int]]


def generate(
    src: Source, the_plan: Plan, rng: np.random.Generator, noise: float, bm25: Bm25
) -> Iterator[tuple[list[Passage], NDArray[np.float32], NDArray[np.float16], list[str]]]:
    """Batches of (passages, vectors, sentence vectors, keys)."""
    passages: list[Passage] = []
    vectors: list[NDArray[np.float32]] = []
    sents: list[NDArray[np.float16]] = []
    keys: list[str] = []
    for t, copy, take in the_plan:
        doc_id = f"{t.id}~{copy}" if copy else t.id
        ep = shifted(t.episode, copy)
        ids = draw(src, t.kind, len(t.times), rng)
        sentences, at = [], 0
        for i, (sid, (tm, end)) in enumerate(zip(ids, t.times, strict=True)):
            text = src.text[sid]
            sentences.append(Sentence(at, at + len(text), text, tm, end, (), i + 1))
            at += len(text) + 1
        title_tok = src.tok(t.title)
        for section, anchor, where in t.passages[:take]:
            ss = tuple(sentences[w] for w in where)
            sid = [ids[w] for w in where]
            sv = np.stack([src.vec[s] for s in sid])
            w = np.array([len(src.text[s]) for s in sid], dtype=np.float32)[:, None]
            v = (w * sv.astype(np.float32)).sum(axis=0)
            v /= max(float(np.linalg.norm(v)), 1e-12)
            v += rng.standard_normal(src.dim).astype(np.float32) * (noise / math.sqrt(src.dim))
            v /= float(np.linalg.norm(v))
            pid = passage_id(doc_id, ss[0].start, ss[-1].end)
            passages.append(
                Passage(pid, doc_id, t.title, t.kind, t.channel, ep, section, ss, anchor,  # type: ignore[arg-type]
                        (), f"synthetic/{doc_id}", None)
            )  # fmt: skip
            vectors.append(v)
            sents.append(sv)
            keys.append(hashlib.sha1(f"synthetic:{pid}".encode()).hexdigest())
            parts = [title_tok, *(src.tok(h) for h in section), *(src.tokens[s] for s in sid)]
            bm25.add(np.concatenate(parts))
            if len(passages) == BATCH:
                yield passages, np.stack(vectors), np.concatenate(sents), keys
                passages, vectors, sents, keys = [], [], [], []
    if passages:
        yield passages, np.stack(vectors), np.concatenate(sents), keys


def manifest_for(
    src: Source, the_plan: Plan, seed: int, noise: float
) -> tuple[dict[str, object], int]:
    """The manifest and the sentence count, from the plan alone."""
    docs: dict[str, dict[str, object]] = {}
    episodes: dict[str, dict[str, object]] = {}
    sentences = n = 0
    for t, copy, take in the_plan:
        n += take
        doc_id = f"{t.id}~{copy}" if copy else t.id
        ep = shifted(t.episode, copy)
        sentences += sum(len(w) for _, _, w in t.passages[:take])
        docs[doc_id] = {
            "path": f"synthetic/{doc_id}",
            "sha256": hashlib.sha256(doc_id.encode()).hexdigest(),
            "kind": t.kind,
            "title": t.title,
            "episode": ep.id if ep else None,
            "passages": take,
            "file": "",
        }
        if ep is not None and (ep.id not in episodes or t.kind == "transcript"):
            end = t.times[-1][1] if t.kind == "transcript" and t.times else None
            episodes[ep.id] = {
                "id": ep.id, "title": ep.title, "date": ep.date, "number": ep.number,
                "duration": end, "transcript": t.kind == "transcript",
            }  # fmt: skip
    manifest: dict[str, object] = {
        "model": {"name": src.model},
        "dimension": src.dim,
        "similarity": "cosine (inner product of L2-normalised vectors)",
        "counts": {"documents": len(docs), "passages": n, "sentences": sentences},
        "documents": docs,
        "episodes": list(episodes.values()),
        "catalogs": [],
        "citations_checked": {},
        "transcript_windows": src.manifest.get("transcript_windows", {}),
        "warnings": [],
        "notes": [],
        "errors": [],
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "synthetic": {"generator": "bench/scale_corpus.py", "seed": seed, "noise": noise},
    }
    return manifest, sentences


def write(
    src: Source, n: int, out: Path, seed: int, noise: float, ann_mode: str
) -> dict[str, object]:
    the_plan = plan(src, n, np.random.default_rng(seed))
    manifest, sentences = manifest_for(src, the_plan, seed, noise)
    rng = np.random.default_rng(seed + 1)
    bm25 = Bm25()
    done = 0
    stamps: list[float] = []
    t0 = time.perf_counter()
    with store.writing(
        out,
        manifest,
        (n, sentences),
        lambda d, t: stamps.append(time.perf_counter()),
        ann_mode,  # type: ignore[arg-type]
    ) as w:
        for batch in generate(src, the_plan, rng, noise, bm25):
            w.add(*batch)
            done += len(batch[0])
            print(f"  {n}: {done:,} passages", file=sys.stderr, end="\r")
        t1 = time.perf_counter()
        w.keyword = bm25.build(src.vocab)
        t2 = time.perf_counter()
    steps = ["passages", "vectors", "ann", "bm25 save", "checksums+manifest", "verify", "publish"]
    marks = [t2, *stamps]
    return {
        "passages": n,
        "sentences": sentences,
        "documents": manifest["counts"]["documents"],  # type: ignore[index]
        "generate_s": round(t1 - t0, 1),
        "bm25_build_s": round(t2 - t1, 1),
        **{f"{s}_s": round(b - a, 1) for s, a, b in zip(steps, marks, marks[1:], strict=False)},
        "total_s": round(marks[-1] - t0, 1),
        "ann": json.loads((out / store.MANIFEST).read_text())["ann"],
        "bytes": {f.name: f.stat().st_size for f in out.resolve().iterdir() if f.is_file()},
    }


def check_bm25(path: Path) -> None:
    """The NumPy BM25 equals bm25s's own over the same tokens (every posting)."""
    import bm25s

    from index.keyword import load_keyword_index

    stored = store.load(path, verify=False, searchable=False)
    ours = load_keyword_index(path / store.KEYWORD)
    assert ours is not None
    src_tokens = []
    for p in stored.passages:
        toks = [*normalise_tokens(p.document_title)]
        for h in p.section:
            toks += normalise_tokens(h)
        for s in p.sentences:
            toks += normalise_tokens(s.text)
        src_tokens.append(toks)
    theirs = bm25s.BM25()
    theirs.index(src_tokens, show_progress=False)
    a, b = ours.bm25, theirs
    assert set(a.vocab_dict) == set(b.vocab_dict) - {""}, "vocabularies differ"  # bm25s adds ""
    for tok, i in a.vocab_dict.items():
        j = b.vocab_dict[tok]
        sa = slice(a.scores["indptr"][i], a.scores["indptr"][i + 1])
        sb = slice(b.scores["indptr"][j], b.scores["indptr"][j + 1])
        assert np.array_equal(a.scores["indices"][sa], b.scores["indices"][sb]), tok
        assert np.allclose(a.scores["data"][sa], b.scores["data"][sb], rtol=1e-6), tok
    print(f"bm25 check: {len(a.vocab_dict):,} terms equal to bm25s's", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, default=Path("/tmp/lib/index"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/scale"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--ann", default="auto", choices=["auto", "flat", "hnsw"])
    ap.add_argument("--check", action="store_true", help="check BM25 against bm25s (smallest)")
    args = ap.parse_args()
    t = time.perf_counter()
    src = load_source(args.source)
    print(f"source: {len(src.text):,} sentences, {len(src.templates):,} documents, "
          f"{time.perf_counter() - t:.1f} s", file=sys.stderr)  # fmt: skip
    report = {}
    for n in sorted(args.sizes):
        out = args.out / f"syn{n // 1000}k"
        report[n] = write(src, n, out, args.seed, args.noise, args.ann)
        print(json.dumps(report[n]), file=sys.stderr)
        if args.check and n == min(args.sizes):
            check_bm25(out)
    (args.out / "scale_corpus.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
