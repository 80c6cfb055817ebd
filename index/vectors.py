"""Every passage's vectors for a build: embedded, pooled, or reused.

- A wiki passage is embedded as it is: the model reads its title, heading
  trail and text (``embed_input``), and its sentence vectors are pooled from
  the same forward pass.
- A transcript window is never embedded itself.  Its transcript is cut into
  back-to-back model windows (``ingest.windows.model_windows``) that the model
  reads whole, which gives every sentence one vector; a window's vector is the
  length-weighted mean of its sentences' vectors (``pool``).  Overlapping and
  long windows then cost no extra embedding, and a new window choice none at all.

Nothing is embedded twice.  A wiki passage's vectors are reused from the
previous build when its embedding key (model and text) is there; a
transcript's sentence vectors when the previous build holds the same file
(content hash) cut into the same model windows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from index import store
from index.embedder import Embedder
from index.tokens import TokenBits, empty, width
from ingest.records import Document, Passage
from ingest.windows import MAX_WINDOW_CHARS, MODEL_WINDOW_S, model_windows

if TYPE_CHECKING:
    from numpy.typing import NDArray

# Written to the manifest: a previous build's sentence vectors are reused only
# when its transcripts were cut into the same model windows.
MODEL_WINDOWS = {"seconds": MODEL_WINDOW_S, "max_chars": MAX_WINDOW_CHARS}

SentenceKey = tuple[str, int]  # (the transcript's ``said_key``, sentence start offset)


def said_key(sha256: str, title: str) -> str:
    """What a transcript's sentence vectors depend on besides the model: the
    file's content and its title, which heads every model window the model
    reads (a catalog that renames the episode changes them)."""
    return f"{sha256}:{title}"


def embed_input(p: Passage) -> tuple[str, list[tuple[int, int]]]:
    """What the model reads for a passage (title and heading trail, then its
    text), and where each sentence lies in it.  Sentence vectors are pooled
    from the passage's own token vectors: in bench/best_sentence.py they find
    the evidence sentence more often than embedding each sentence alone
    (0.87 against 0.81) and cost nothing extra."""
    text = p.embed_text()
    spans: list[tuple[int, int]] = []
    pos = len(text) - len(p.text)
    for s in p.sentences:
        spans.append((pos, pos + len(s.text)))
        pos += len(s.text) + 1
    return text, spans


def embed_key(model: str, text: str) -> str:
    return hashlib.sha1(f"{model}\x00{text}".encode(), usedforsecurity=False).hexdigest()


def passage_key(model: str, p: Passage, doc: Document) -> str:
    """The key written to embed_keys.txt: what the passage's vectors depend on
    (a transcript window's: its file's content and its place in it)."""
    if p.kind == "transcript":
        said = said_key(doc.sha256, doc.title)
        return embed_key(model, f"pooled:{MODEL_WINDOWS}:{said}:{p.start}:{p.end}")
    return embed_key(model, embed_input(p)[0])


def pool(vectors: NDArray[np.float32], weights: Sequence[float]) -> NDArray[np.float32]:
    """A window's vector from its sentences' vectors, each weighted by its length
    (characters, a proxy for the word pieces the model averages over).  It is
    not the model's vector for the window's text (that one has the title and
    only its own context; the cosine between them is 0.94 on average,
    bench/windows.py --fidelity); what counts is that it retrieves better
    (docs/benchmarks.md, "Transcript windows")."""
    w = np.asarray(weights, dtype=np.float32)[:, None]
    v = (w * np.asarray(vectors, dtype=np.float32)).sum(axis=0)
    out: NDArray[np.float32] = (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)
    return out


@dataclass
class Previous:
    """What a build may reuse from the build it replaces: a wiki passage's
    vector, sentence vectors and tokens by its key; a transcript sentence's
    vector and tokens by its ``SentenceKey``."""

    passages: dict[str, tuple[NDArray[np.float32], NDArray[np.float16], TokenBits]] = field(
        default_factory=dict
    )
    sentences: dict[SentenceKey, tuple[NDArray[np.float16], NDArray[np.uint8]]] = field(
        default_factory=dict
    )


def previous(old: store.Stored | None, model: str, transcripts: set[str] | None = None) -> Previous:
    """What a build may reuse of ``old`` (the served build, already verified
    against its checksums by ``store.previous``), when it used the same model.
    ``transcripts``: the ``said_key`` of the transcripts being built now (None:
    any); only their sentences can be reused, so only their rows are parsed.
    Wiki rows are reused by their embedding key alone, without parsing them.
    A build without stored tokens (before podcite stored them) gives nothing:
    its passages are embedded again, once, so that every row has its tokens."""
    if old is None or old.model != model or old.token_bits is None:
        return Previous()
    prev = Previous()
    windows = old.manifest.get("transcript_windows", {}).get("model_windows")
    shas = {
        d: said_key(str(info.get("sha256")), str(info.get("title")))
        for d, info in old.manifest.get("documents", {}).items()
    }
    cols = old.columns
    transcript = cols.kinds.index("transcript") if "transcript" in cols.kinds else -1
    wanted = [
        i
        for i, d in enumerate(cols.documents)
        if windows == MODEL_WINDOWS
        and d in shas
        and (transcripts is None or shas[d] in transcripts)
    ]
    keys = old.keys
    for i in np.flatnonzero(cols.kind != transcript):
        row = int(i)
        prev.passages[keys[row]] = (
            old.vectors[i],
            old.sentence_vectors_of(row),
            old.tokens_of(row),
        )
    said = np.flatnonzero((cols.kind == transcript) & np.isin(cols.document, wanted))
    for i in said:
        row = int(i)
        p, vecs, bits = old.passages[row], old.sentence_vectors_of(row), old.tokens_of(row)
        for s, v, b in zip(p.sentences, vecs, bits.split(), strict=True):
            prev.sentences[(shas[p.document_id], s.start)] = (v, b)
    return prev


@dataclass
class Vectors:
    passages: NDArray[np.float32]  # one row per passage, normalised
    sentences: list[NDArray[np.float16]]  # per passage, one row per sentence
    embedded: int  # passages whose vectors needed the model
    reused: int
    tokens: list[TokenBits]  # per passage, its sentences' content-word tokens


def compute(
    passages: list[Passage],
    docs: dict[str, Document],
    keys: list[str],
    embedder: Embedder,
    prev: Previous,
    progress: Callable[[int, int], None] | None = None,
) -> Vectors:
    """Vectors of every passage; ``progress(done, total)`` counts model inputs."""
    dim = embedder.dimension
    out = np.zeros((len(passages), dim), dtype=np.float32)
    sents: list[NDArray[Any]] = [np.zeros((0, dim), dtype=np.float16)] * len(passages)
    toks: list[TokenBits] = [empty(width(dim))] * len(passages)
    direct: list[int] = []
    pooled: list[int] = []
    for i, (p, key) in enumerate(zip(passages, keys, strict=True)):
        if p.kind == "transcript":
            pooled.append(i)
        elif key in prev.passages:
            out[i], sents[i], toks[i] = prev.passages[key]
        else:
            direct.append(i)
    # Extended in place with what this build embeds: ``prev`` is this build's
    # own (previous() makes a fresh one per build), so nothing else sees it.
    said = prev.sentences
    keys_of = {d: said_key(doc.sha256, doc.title) for d, doc in docs.items()}
    missing = dict.fromkeys(
        passages[i].document_id
        for i in pooled
        if any(
            (keys_of[passages[i].document_id], s.start) not in said for s in passages[i].sentences
        )
    )
    units = [u for d in missing for u in model_windows(docs[d])]
    inputs = [embed_input(passages[i]) for i in direct] + [embed_input(u) for u in units]
    if inputs:
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, len(inputs))

        pooled_out = embedder.encode_spans(
            [text for text, _ in inputs], [spans for _, spans in inputs], progress=tick
        )
        svecs, stoks = pooled_out.sentences, pooled_out.tokens
        for j, i in enumerate(direct):
            out[i], sents[i] = pooled_out.passages[j], svecs[j].astype(np.float16)
            toks[i] = stoks[j]
        n = len(direct)
        for u, vecs, bits in zip(units, svecs[n:], stoks[n:], strict=True):
            doc = docs[u.document_id]
            for s, v, b in zip(u.sentences, vecs, bits.split(), strict=True):
                said[(said_key(doc.sha256, doc.title), s.start)] = (v.astype(np.float16), b)
    for i in pooled:
        p = passages[i]
        key = said_key(docs[p.document_id].sha256, docs[p.document_id].title)
        held = [said[(key, s.start)] for s in p.sentences]
        rows = np.stack([v for v, _ in held]).astype(np.float32)
        out[i] = pool(rows, [len(s.text) for s in p.sentences])
        sents[i] = rows.astype(np.float16)
        toks[i] = TokenBits(
            np.concatenate([b for _, b in held]), np.array([len(b) for _, b in held], np.int32)
        )
    embedded = len(direct) + sum(1 for i in pooled if passages[i].document_id in missing)
    return Vectors(out, sents, embedded, len(passages) - embedded, toks)
