"""How often is a passage's "best sentence" the evidence sentence?

For each question of eval/wiki_questions.jsonl, take the passage holding its
evidence sentence and pick the sentence closest to the question by:
separate sentence embeddings (title + headings + sentence), pooled token
vectors from the passage's own forward pass, and word overlap.

    .venv/bin/python bench/best_sentence.py
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from index import SentenceTransformerEmbedder
from index.embedder import encode_pooled
from ingest import load, passages

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
WORD = re.compile(r"[a-z0-9]+")


def src(s: str) -> Path:
    return (SHARED / s.removeprefix("shared:")) if s.startswith("shared:") else ROOT / s


def main() -> None:
    questions = [json.loads(line) for line in (ROOT / "eval" / "wiki_questions.jsonl").open()]
    files = sorted({src(e["source"]).resolve() for q in questions for e in q["evidence"]})
    docs = {str(Path(d.path).resolve()): d for d in load(files).documents}
    emb = SentenceTransformerEmbedder()
    cases = []
    for q in questions:
        e = q["evidence"][0]
        d = docs[str(src(e["source"]).resolve())]
        p = next(p for p in passages(d) if p.start <= e["char"] < p.end)
        gold = next(i for i, s in enumerate(p.sentences) if s.start <= e["char"] < s.end)
        if len(p.sentences) > 1:
            cases.append((q["question"], p, gold))
    qv = emb.encode([c[0] for c in cases])
    ctx = [c[1].embed_text()[: -len(c[1].text)] for c in cases]
    t0 = time.perf_counter()
    sep = [emb.encode([ctx[i] + s.text for s in c[1].sentences]) for i, c in enumerate(cases)]
    t_sep = time.perf_counter() - t0
    texts, spans = [], []
    for c in cases:
        text = c[1].embed_text()
        pos = len(text) - len(c[1].text)
        sp = []
        for s in c[1].sentences:
            sp.append((pos, pos + len(s.text)))
            pos += len(s.text) + 1
        texts.append(text)
        spans.append(sp)
    t0 = time.perf_counter()
    pooled = encode_pooled(emb, texts, spans).sentences
    t_pool = time.perf_counter() - t0

    def overlap(question: str, sentence: str) -> float:
        a, b = set(WORD.findall(question.lower())), set(WORD.findall(sentence.lower()))
        return len(a & b) / (len(b) ** 0.5 or 1)

    acc = {
        "separate": 0,
        "pooled": 0,
        "overlap": 0,
        "first": 0,
        "pooled+0.05ov": 0,
        "pooled+0.1ov": 0,
        "pooled+0.2ov": 0,
    }
    for i, (question, p, gold) in enumerate(cases):
        acc["separate"] += int(np.argmax(sep[i] @ qv[i])) == gold
        acc["pooled"] += int(np.argmax(pooled[i] @ qv[i])) == gold
        acc["overlap"] += int(np.argmax([overlap(question, s.text) for s in p.sentences])) == gold
        acc["first"] += gold == 0
        ov = np.array([overlap(question, s.text) for s in p.sentences])
        for lam in (0.05, 0.1, 0.2):
            acc[f"pooled+{lam}ov"] += int(np.argmax(pooled[i] @ qv[i] + lam * ov)) == gold
    n = len(cases)
    print(f"{n} questions whose evidence passage has 2+ sentences")
    for k, v in acc.items():
        print(f"{k:9s} best sentence = evidence: {v / n:.2f}")
    print(f"extra embedding time: separate {t_sep:.1f}s, pooled (incl. passages) {t_pool:.1f}s")


if __name__ == "__main__":
    main()
