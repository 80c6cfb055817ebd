"""The index directory: its one owner.  Written aside, verified, published,
pruned and loaded here, and nowhere else: ``read`` holds the layout's names,
``Stored``, ``load`` and its checks; ``write`` writes a build and publishes it.
Callers use this package's names (``store.load``, ``store.publish``).

Format 3 (what this podcite writes), every file in row order:

    manifest.json          format version, model, dimension, counts, documents
                           (path, hash, kind, title, episode, passages), build
                           time, warnings, the dense index used (``ann``), and
                           the size and SHA-256 of every file below
    passages.jsonl         one passage a line (``index.serial.passage_to_dict``)
    passages.offsets.npy   int64 (passages + 1): where each line starts; the last
                           is the file's size.  A passage is read when asked for
    rows.npy               per row: kind, document, episode, date (codes into
                           rows.json), start offset, sentence count
    rows.json              the tables rows.npy codes into: kinds, documents,
                           episodes, dates (sorted)
    vectors.npy            float32 (passages, dim), L2-normalised; memory-mapped
    sentences.npy          float16 (sentences, dim), L2-normalised, passage order;
                           memory-mapped
    token_bits.npy         uint8 (tokens, dim / 8): each sentence's content-word
                           token vectors as sign bits (index/tokens.py), the
                           sentences in sentences.npy's order; memory-mapped,
                           read by the re-reading (index/rerank.py)
    token_starts.npy       int64 (sentences + 1): where each sentence's tokens
                           start in token_bits.npy; the last is their count.
                           Both absent from builds before them, and from a
                           build that carries rows of one (the re-reading
                           then embeds its candidates again)
    embed_keys.txt         sha1 of each passage's embedded text: the embedding
                           cache key (read only by a rebuild)
    tokens.txt             each passage's keyword tokens (``index.keyword.
                           passage_tokens``), space-separated, a line a row: a
                           rebuild makes the keyword index from them without
                           parsing or tokenising the rows it carries over (read
                           only by a rebuild; builds before it have none)
    ann.faiss              only from ``index.ann.HNSW_FROM`` passages on (or with
                           PODCITE_ANN=hnsw): a FAISS HNSW graph over 8-bit
                           codes of vectors.npy (IndexHNSWSQ), read into memory
    bm25/                  the keyword index (``KeywordIndex.save``): bm25s's files
                           data.csc.index.npy, indices.csc.index.npy,
                           indptr.csc.index.npy (memory-mapped), vocab.index.json,
                           params.index.json, and podcite.json (tokenizer version)

Nothing is read whole at start-up but the manifest, rows.npy/.json and the
BM25 vocabulary (index/rows.py: no object per passage).  Formats 1 and 2 (no
offsets, rows or sizes; an IndexFlatIP in faiss.index) are still read, whole,
as before; a rebuild from one writes format 3, embedding the passages again
once for their token vectors (which those builds, and format 3 builds before
token_bits.npy, lack; index/vectors.py ``previous``).

The directory a user names is a symlink to one build under ``.<name>.builds/``
(index/builds.py: the lock, names, leftovers, pruning, rollback); a new build is
written beside it as ``<stamp>-<pid>.partial``, fsynced, verified, renamed, and
the symlink replaced in one atomic step (then the folders fsynced).

Checks (docs/reliability.md says what each guarantees): every load checks the
manifest's own checksum and the manifest against the data (dimension, counts,
document list, the size of every file).  ``verify=True`` adds the SHA-256 of
every file for an index up to ``FULL_CHECK_BYTES`` and, past that, of every
file but the large ones (vectors, sentences, passages, graph, BM25 postings),
so a million passages start in seconds; ``verify="full"`` hashes everything,
and is what ingest (the build it reuses and the one it writes), rollback and
PODCITE_VERIFY_INDEX=full use.
"""

from index.builds import builds_dir
from index.store.read import (
    ANN,
    DATA_FILES,
    FORMAT_VERSION,
    FULL_CHECK_BYTES,
    KEYS,
    KEYWORD,
    LEGACY_FAISS,
    LEGACY_FILES,
    MANIFEST,
    PASSAGES,
    READS,
    SELF,
    SENTENCES,
    SIGN_BITS,
    SIGN_STARTS,
    SMALL_FILE,
    TOKENS,
    VECTORS,
    Stored,
    Verify,
    check_manifest,
    file_sha256,
    load,
    manifest_digest,
    previous,
    read_manifest,
)
from index.store.write import (
    WRITE_STEPS,
    Writer,
    is_foreign,
    lock,
    needed_bytes,
    publish,
    rollback,
    writing,
)

__all__ = [
    "ANN",
    "DATA_FILES",
    "FORMAT_VERSION",
    "FULL_CHECK_BYTES",
    "KEYS",
    "KEYWORD",
    "LEGACY_FAISS",
    "LEGACY_FILES",
    "MANIFEST",
    "PASSAGES",
    "READS",
    "SELF",
    "SENTENCES",
    "SIGN_BITS",
    "SIGN_STARTS",
    "SMALL_FILE",
    "TOKENS",
    "VECTORS",
    "WRITE_STEPS",
    "Stored",
    "Verify",
    "Writer",
    "builds_dir",
    "check_manifest",
    "file_sha256",
    "is_foreign",
    "load",
    "lock",
    "manifest_digest",
    "needed_bytes",
    "previous",
    "publish",
    "read_manifest",
    "rollback",
    "writing",
]
