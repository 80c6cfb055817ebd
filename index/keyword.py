"""Keyword (BM25) index over the same passages as the vectors, in the same row order.

The dense model reads "5-HT2A" as a handful of sub-word pieces and cannot tell
it from "5-HT1A"; BM25 over normalised tokens can, so a question naming a rare
receptor, compound, dose or author finds the passage that names it.  That only
works when a document and a question that write the same thing differently
("5HT2A", "5-HT2A", "5 HT2A"; "10 mg", "10mg", "10 milligrams") end up with the
same tokens, so both go through ``normalise_tokens`` and nothing else.

``KeywordIndex.save`` writes bm25s's own plain files into the folder that
``index.store`` gives it (``bm25/`` of the index directory; the store's
docstring lists them), plus ``podcite.json``, which names the tokenizer
version: an index written by another version of ``normalise_tokens`` would
silently mismatch query tokens, so it is treated as absent (rebuild with
``podcite ingest``).

``STOPWORDS`` and ``words`` are podcite's one stop-word list and word
tokenizer: the citation check reads content words with them too.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

from ingest.records import Passage

if TYPE_CHECKING:
    from numpy.typing import NDArray

DIRNAME = "bm25"
META = "podcite.json"
# Bump whenever normalise_tokens changes what it emits for some text.
TOKENIZER_VERSION = 1

# NLTK's list, less the single letters that carry meaning here ("vitamin D",
# "omega 3" after a letter, "type 2"); "s" and "t" stay stopwords (possessives
# and contractions leave them behind).
STOPWORDS = frozenset(STOPWORDS_EN_PLUS) - {"d", "m", "o", "y"}
_WORDS = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The lowercased runs of letters and digits of ``text``, NFKC-normalised."""
    return _WORDS.findall(unicodedata.normalize("NFKC", text).lower())


# Unit spellings -> one canonical unit, used only right after a number, so
# "10 mg", "10mg", "10-mg" and "10 milligrams" all give the token "10mg"
# (a standalone "second" or "minutes" stays an ordinary stemmed word).
_UNIT_SPELLINGS = {
    "mg": "mg milligram milligrams",
    "mcg": "mcg ug μg microgram micrograms",
    "g": "g gram grams",
    "kg": "kg kilogram kilograms kilo kilos",
    "iu": "iu",
    "ml": "ml milliliter milliliters millilitre millilitres",
    "l": "l liter liters litre litres",
    "hz": "hz hertz",
    "khz": "khz kilohertz",
    "min": "min mins minute minutes",
    "s": "sec secs second seconds",
    "h": "h hr hrs hour hours",
    "day": "day days",
    "wk": "wk week weeks",
    "mo": "month months",
    "yr": "yr yrs year years",
    "pct": "pct percent",
    "deg": "deg degree degrees",
    "c": "c celsius",
    "f": "f fahrenheit",
    "cal": "cal calorie calories kcal kilocalorie kilocalories",
    "lux": "lux",
    "nm": "nm nanometer nanometers nanometre nanometres",
    "db": "db decibel decibels",
    "bpm": "bpm",
    "lb": "lb lbs pound pounds",
    "oz": "oz ounce ounces",
    "cm": "cm centimeter centimeters",
    "mm": "mm millimeter millimeters",
    "km": "km kilometer kilometers",
}
UNITS = {s: unit for unit, spellings in _UNIT_SPELLINGS.items() for s in spellings.split()}

# Spoken numbers (transcripts and wiki prose write "one to three Hertz"); also
# what ``index.answer_type`` counts as a sentence stating a number.
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
)
_TENS = {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70"}
NUMBER_WORDS = {w: str(i) for i, w in enumerate(_ONES.split(" "))} | _TENS
NUMBER_WORDS |= {"eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000"}

_DASHES = re.compile(r"[\u2010-\u2015\u2212]")
_QUOTES = re.compile(r"[\u2018\u2019\u02bc`]")
_POSSESSIVE = re.compile(r"'s\b")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_PERCENT = re.compile(r"(?<=\d)\s*%")
_TEMPERATURE = re.compile(r"\s*(?:°|\bdeg(?:rees?)?\s+)(c|f|celsius|fahrenheit)\b")
_DEGREES = re.compile(r"\s*°\s*")
_NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b")
_RANGE = re.compile(r"(?<=\d)\s*(?:-|\bto\b)\s*(?=\d)")
# A piece: a number (decimal, or a range "1-3") with letters glued on ("10mg",
# "5ht2a", "1-3hz"), or a run of letters and digits ("ht2a", "b12").
_PIECE = re.compile(r"\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?[^\W_]*|[^\W_]+")
_NUMERIC = re.compile(r"\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?")
_LEADING_NUMBER = re.compile(r"(\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?)([^\W\d_][^\W_]*)")

_STEMMER = Stemmer.Stemmer("english")


def _prepare(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _DASHES.sub("-", text)
    text = _POSSESSIVE.sub("", _QUOTES.sub("'", text))
    text = _THOUSANDS.sub("", text)  # 10,000 lux -> 10000 lux
    text = _PERCENT.sub(" percent", text)
    text = _TEMPERATURE.sub(r" \1", text)  # 40°C, 40 degrees C -> "40 c" -> 40c
    text = _DEGREES.sub(" deg ", text)
    text = _NUMBER_WORD.sub(lambda m: NUMBER_WORDS[m.group(1)], text)
    return _RANGE.sub("-", text)  # "1 to 3", "1 - 3" -> "1-3"


def _word(token: str) -> str:
    return str(_STEMMER.stemWord(token)) if token.isalpha() else token


def _parts(piece: str, out: list[str]) -> None:
    """The tokens of one piece on its own (its joins with neighbours come later)."""
    glued = _LEADING_NUMBER.fullmatch(piece)
    if glued:  # "10mg", "5ht2a": the whole, canonical, plus the number and the rest
        number, rest = glued.groups()
        out.append(number + UNITS.get(rest, rest))
        _parts(number, out)
        if rest not in STOPWORDS:
            out.append(_word(rest))
    elif _NUMERIC.fullmatch(piece) and "-" in piece:  # a range: "1-3", "1", "3"
        out.append(piece)
        out.extend(piece.split("-"))
    elif piece not in STOPWORDS:
        out.append(_word(piece))


def _space_join(a: str, b: str) -> str | None:
    """The joined token for two pieces separated only by a space, when they
    read as one name: "5 ht2a", "10 mg", "5 htp", "omega 3", "type 2"."""
    if _NUMERIC.fullmatch(a):
        if b in UNITS:
            return a + UNITS[b]
        has_digit = any(c.isdigit() for c in b)
        if has_digit and not b.isdigit():
            return a + b  # a code: "5 ht2a"
        if b.isalpha() and len(b) <= 3 and b not in STOPWORDS:
            return a + b  # an abbreviation: "5 htp", "5 ht"
        return None
    if a.isalpha() and len(a) <= 6 and a not in STOPWORDS and b.isdigit() and len(b) <= 2:
        return a + b
    return None


def _space_joins(a: str, b: str, out: list[str]) -> None:
    joined = _space_join(a, b)
    if joined is None:
        return
    out.append(joined)
    if b in UNITS and "-" in a:  # "1-3 hz" is also "3 hz"
        out.append(a.rsplit("-", 1)[1] + UNITS[b])


def normalise_tokens(text: str) -> list[str]:
    """BM25 tokens of ``text``: for documents and queries alike.

    Lowercased, NFKC, English stopwords out, Snowball-stemmed words.  Names
    written in parts are kept joinable: a hyphenated run ("5-HT2A", "alpha-GPC",
    "non-sleep") gives its joined token as well as its parts, and so do a
    number and what follows it ("5 HT2A", "10 mg", "1-3 Hz"), so every spelling
    shares the joined token and an exact match outscores a partial one.
    """
    prepared = _prepare(text)
    out: list[str] = []
    chain: list[str] = []  # pieces linked by hyphens, being collected
    prev: str | None = None  # the previous piece when only a space separates it
    pos = 0
    for m in _PIECE.finditer(prepared):
        piece, gap = m.group(), prepared[pos : m.start()]
        pos = m.end()
        _parts(piece, out)
        if gap == "-" and chain:
            chain.append(piece)
        else:
            _flush(chain, out)
            chain = [piece]
            if prev is not None and gap.isspace():
                _space_joins(prev, piece, out)
        prev = piece
    _flush(chain, out)
    return out


def _flush(chain: list[str], out: list[str]) -> None:
    if len(chain) < 2:
        return
    if len(chain) == 2 and _NUMERIC.fullmatch(chain[0]) and chain[1] in UNITS:
        out.append(chain[0] + UNITS[chain[1]])  # "10-mg" as "10 mg"
    else:
        out.append(_word("".join(chain)))
    # Each inner piece already gave its parts; a joined run "5-ht2a" must also
    # match "5 ht2a", which _space_join spells the same way.


def passage_text(p: Passage) -> str:
    """What is indexed for a passage: its title and heading trail name the topic
    that its sentences often only imply ("It primarily targets 5HT2A"), and
    its episode's title where that is not its own: a transcript window's
    title is its episode's, which names the guest ("... | Dr. Lex Fridman"),
    and a wiki page written from the episode lacked it, so a question naming
    the guest found the episode's windows before the page that answers it
    (docs/benchmarks.md, "A wiki passage names its episode")."""
    episode = p.episode.title if p.episode is not None else ""
    own = (episode,) if episode and episode != p.document_title else ()
    return " ".join((*own, p.document_title, *p.section, p.text))


@dataclass
class KeywordIndex:
    bm25: Any  # bm25s.BM25
    size: int  # passages, in index row order
    _term_max: dict[int, float] = field(default_factory=dict)
    _last: tuple[str, list[int]] = ("", [])  # hybrid search asks twice per query

    def query_ids(self, query: str) -> list[int]:
        """Vocabulary ids of the query's tokens, each once: query term frequency
        is ignored (Lucene-style), so repeating a word does not outweigh a name."""
        last = self._last
        if last[0] == query and query:
            return last[1]
        vocab: dict[str, int] = self.bm25.vocab_dict
        ids = sorted({vocab[t] for t in normalise_tokens(query) if t in vocab})
        self._last = (query, ids)
        return ids

    def scores(self, query: str) -> NDArray[np.float32]:
        """One BM25 score per passage row (zeros when no query term is indexed)."""
        ids = self.query_ids(query)
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        # bm25s's np.add.at over the posting lists: 1.2 ms at 10^6 passages,
        # against 2.3 ms for a fancy-indexed add (bench: docs/benchmarks.md).
        scores: NDArray[np.float32] = self.bm25.get_scores_from_ids(ids)
        return scores

    def _postings(self) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.int64]]:
        """bm25s's eager scores as a CSC matrix: term t's rows are
        ``indices[indptr[t]:indptr[t+1]]`` with their scores in ``data``."""
        s = self.bm25.scores
        return s["data"], s["indices"], s["indptr"]

    def max_score(self, query: str) -> float:
        """A ceiling on any passage's score for ``query``: the sum over its terms
        of the best score each term gives any passage.  Dividing by it puts BM25
        on [0, 1] with a meaning that holds across questions (how much of the
        question's rare vocabulary a passage has), unlike dividing by the top
        hit's score, which makes the best of a poor set of matches look perfect.
        bm25s has no per-term maximum, so each term's is taken from its posting
        list once and kept (a pass over one posting list, no array per row)."""
        total = 0.0
        data, _, indptr = self._postings()
        extra = self.bm25.nonoccurrence_array
        for t in self.query_ids(query):
            if t not in self._term_max:
                best = float(data[int(indptr[t]) : int(indptr[t + 1])].max(initial=0.0))
                self._term_max[t] = best + (float(extra[t]) if extra is not None else 0.0)
            total += self._term_max[t]
        return total

    def save(self, directory: Path) -> None:
        """bm25s's own plain files, and ours naming the tokenizer version."""
        import bm25s

        directory.mkdir(parents=True, exist_ok=True)
        self.bm25.save(str(directory), show_progress=False)
        meta = {"tokenizer": TOKENIZER_VERSION, "passages": self.size, "bm25s": bm25s.__version__}
        (directory / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")


def passage_tokens(p: Passage) -> list[str]:
    """A passage's keyword tokens as the index holds them (never empty: bm25s
    needs a token a row)."""
    return normalise_tokens(passage_text(p)) or [""]


# bm25s's defaults (Lucene BM25), which podcite has always used.
K1, B = 1.5, 0.75


def keyword_index_of(corpus: Sequence[list[str]]) -> KeywordIndex:
    """The keyword index of rows given as their tokens (``passage_tokens``).

    Our own builder of bm25s's matrix (``bm25_matrix``), because bm25s's walks
    every token in Python twice and was the largest cost of a one-file
    re-ingest (1.4 s of 5 on the shared library); here the walk is one
    dictionary pass and the rest is NumPy.  bm25s itself still saves, loads
    and scores it."""
    from itertools import chain

    docs = [tokens or [""] for tokens in corpus]  # an empty row: one "" token, as bm25s
    n = len(docs)
    flat = list(chain.from_iterable(docs))
    vocab = {t: i for i, t in enumerate(dict.fromkeys(flat))}
    ids = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
    lengths = np.fromiter(map(len, docs), dtype=np.int64, count=n)
    doc = np.repeat(np.arange(n, dtype=np.int64), lengths)
    # One sort by (term, row) gives each row's count of each term.
    keys, tf = np.unique(ids * max(n, 1) + doc, return_counts=True)
    term, rows = np.divmod(keys, max(n, 1))
    return bm25_matrix(term, rows, tf, lengths, vocab)


def bm25_matrix(
    term: NDArray[np.integer[Any]],
    row: NDArray[np.integer[Any]],
    tf: NDArray[np.integer[Any]],
    lengths: NDArray[np.integer[Any]],
    vocab: dict[str, int],
) -> KeywordIndex:
    """bm25s's eager Lucene BM25 matrix (k1 1.5, b 0.75: its defaults, which
    podcite has always used) from postings: ``tf[i]`` occurrences of term id
    ``term[i]`` (``vocab``'s ids, every one used) in ``row[i]``, each (term,
    row) once, rows ``lengths`` tokens long.  The same postings as
    ``bm25s.BM25.index`` over the same tokens, posting for posting
    (``tests/test_hybrid.py``); ``bench/scale_corpus.py`` builds 10^6 rows
    with it from token ids, never holding the tokens as strings."""
    import math

    import bm25s

    n = int(lengths.size)
    df = np.bincount(term, minlength=len(vocab))
    # As bm25s: idf through math.log in float64, stored float32; tf terms in float64.
    idf = np.array([math.log(1 + (n - d + 0.5) / (d + 0.5)) for d in df.tolist()], np.float32)
    lens = lengths.astype(np.float64)
    norm = K1 * ((1 - B) + B * lens / lens.mean()) if n else lens
    tfs = tf.astype(np.float64)
    scores = (idf[term] * (tfs / (norm[row] + tfs))).astype(np.float32)
    order = np.argsort(term, kind="stable")  # postings by term, rows ascending within
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    retriever = bm25s.BM25(k1=K1, b=B)
    retriever.nonoccurrence_array = None  # Lucene BM25 has none
    retriever.scores = {
        "data": scores[order],
        "indices": np.asarray(row, dtype=np.int32)[order],
        "indptr": indptr,
        "num_docs": n,
    }
    retriever.vocab_dict = vocab
    return KeywordIndex(retriever, n)


def build_keyword_index(passages: Sequence[Passage]) -> KeywordIndex:
    """The keyword index of ``passages``, in index row order."""
    return keyword_index_of([passage_tokens(p) for p in passages])


def load_keyword_index(directory: Path) -> KeywordIndex | None:
    """Load what ``KeywordIndex.save`` wrote; None when absent or written by another
    tokenizer version (its tokens would not match today's queries)."""
    meta_file = directory / META
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("tokenizer") != TOKENIZER_VERSION:
        return None
    import bm25s

    # Memory-mapped: at 10^6 passages the postings are ~10^8 entries, of which
    # a question reads a few posting lists.
    retriever = bm25s.BM25.load(str(directory), show_progress=False, mmap=True)
    return KeywordIndex(retriever, int(meta["passages"]))
