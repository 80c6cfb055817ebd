"""Inline markup of wiki pages: citations, links, emphasis.

Everything here works on one raw sentence (a slice of the source) and returns
its readable text, its links and its citation times, so a sentence's offsets
always point at the verbatim source while its ``text`` is what a person reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.clock import parse_hms

# Citations in the plain-text export: [HH:MM:SS], [H:MM:SS], [MM:SS] (and junk
# like [1:2] or [99:99:99], which is reported, not trusted).
CITE_TEXT = re.compile(r"\[(?P<t>[\d:]{1,12}|HH:MM:SS)\]")

# Citations in Markdown: an <a class="yt-timestamp"> tag, sometimes wrapped in
# a Markdown link "[01:02:03](<a ...>[01:02:03]</a>)" or in brackets/parens.
# ``close`` is empty or ")" for the broken tags found in the wild ("</a)"), and
# the tag and its brackets may be escaped as Markdown escapes them ("\[\<a ...\]").
CITE_MD = re.compile(
    r"(?P<pre>\[[^\]\n]{0,14}\]\()?(?P<open>\\?[\[(](?=\\?<a))?"
    r"\\?<a\s+class=\"yt-timestamp\"\s+data-t=\"(?P<t>[^\"]*)\"\s*>(?P<inner>[^<\n]{0,24})"
    r"(?:</a(?P<close>>|\)|)|(?P<unclosed>))"
    r"(?(open)\\?[\])])?(?(pre)\))?"
)

# Citations in Markdown written as text, as the plain export writes them:
# "[00:06:00]", or a Markdown link whose words are the clock ("[01:15:56](#t=...)",
# "(#)", a placeholder URL): 451 in 59 of the shared wiki's pages.  The source
# gives that time for that sentence as surely as the tag does.  A colon is
# required, so a footnote "[1]" stays text; "[:11:39]" is a malformed citation.
CITE_CLOCK_MD = re.compile(
    r"\[(?P<clock>(?=[\d:]{1,12}\])\d*:[\d:]*)\](?:\((?:[^()\s]|\([^()\s]*\))*\))?"
)
# And with no brackets: in parentheses, "(00:40:53)", a range "(0:07:53-0:08:06)"
# (cited at its start), alone or as a link's words ("[[slug | (01:12:10)]]"), or
# a link's words alone ("([[slug | 00:22:36]])"): 57 in 12 of the shared pages.
# Hours, minutes and seconds are required, so a time of day in parentheses
# ("(4:00)") stays text; the link stays a link.
CITE_PAREN_MD = re.compile(
    r"\((?P<pclock>\d{1,2}:\d{2}:\d{2})(?:\s*[-\u2013]\s*\d{1,2}:\d{2}:\d{2})?\)"
    r"|(?<=\|)\s*(?P<lclock>\d{1,2}:\d{2}:\d{2})\s*(?=\]\])"
)
_CITE_MD_ANY = re.compile(f"{CITE_MD.pattern}|{CITE_CLOCK_MD.pattern}|{CITE_PAREN_MD.pattern}")

# What may trail a sentence's closing punctuation and still belong to it.
TRAILER_TEXT = r"\[[\d:]{1,12}\]"
TRAILER_MD = _CITE_MD_ANY.pattern

# Links.  Markdown: [[slug]] is a reference (leaves the text), [[slug | words]]
# reads as its words.  Plain text: the export writes a bare snake_case slug at
# the end of a sentence, before its punctuation or citation.
LINK_MD = re.compile(r"\[\[(?P<slug>[^|\]\n]+?)\s*(?:\|\s*(?P<words>[^\]\n]*?)\s*)?\]\]")
# Links broken in the source ("[[slug | words]." or "[[slug|."): same meaning.
LINK_BROKEN = re.compile(r"\[\[(?P<slug>[^|\]\n\[\s]+)\s*(?:\|(?P<words>[^\]\n\[]*))?\]?")
LINK_TEXT = re.compile(
    r"(?:(?<=\s)|^|(?<=[.!?]))(?P<slug>[a-z0-9]+(?:_[a-z0-9]+){1,})"
    r"(?=\s*(?:\[[\d:]{1,12}\]\s*)*[.!?]?[\"'”’)]*\s*(?:\[[\d:]{1,12}\]\s*)*$)"
)

# A link written with single brackets, "([social_connections | words])", and a
# slug left bare in a sentence, "… and the_impact_of_dopamine_on_craving.": about
# 50 shared sentences showed them.  A slug has underscores and no capitals or
# spaces, so "[source]" and "[using the BMI]" stay text; a bare one reads as its
# words.
_LINK_SINGLE = re.compile(
    r"\[(?P<slug>[a-z0-9]+(?:_[a-z0-9]+)+)\s*(?:\|\s*(?P<words>[^\]\n\[]*?)\s*)?\]+(?!\()"
)
_BARE_SLUG = re.compile(r"(?<![\w/.-])[a-z0-9]+(?:_[a-z0-9]+){2,}(?![\w/-]|\.\w)")
_MD_LINK = re.compile(r"\[(?P<words>[^\]\n]+)\]\((?:[^()\s]|\([^()\s]*\))+\)")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>\n]*>")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)")
_CALLOUT = re.compile(r"\[![a-zA-Z]+\][+-]?\s*")
# A code fence around a whole article ("```markdown"): 38 of the shared pages
# open with one, which read as a sentence "markdown".
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)[A-Za-z0-9_-]*[ \t]*$", re.M)
# What a list of citations leaves once they are gone ("[t, t]", "([t](#), [t](#))",
# "[(t)]", "claim [[link]] [t], [t]."): brackets and commas around nothing, shown
# as "attention, ]." or "effects (,)." in about 60 shared sentences.  A removed citation
# is marked first, so only what stood between or around citations is dropped.
_GONE = "\x00"
_BETWEEN_GONE = re.compile(r"\x00[\s,;]*(?=\x00)")
_AROUND_GONE = re.compile(r"[\[(]\s*\x00\s*[\])]")
_AFTER_GONE = re.compile(r"[\s,;]*\x00(?P<close>\s*[\])])?")
_DOUBLE_STOP = re.compile(r"(?<!\.)\s*[,;]?\s*\.\s*\.(?!\.)|\s*[,;:]\s*\.(?!\.)")
# What may follow a link that ends its sentence: citations, other links, punctuation.
_ENDS = re.compile(r"(?:[\s\x00]|\[\[[^\]\n]*\]\]|[.!?;:,)\]\"'\u201d\u2019])*")
# A Markdown escape ("\[", "\*") reads as the character; a backslash alone
# (a hard line break) as nothing: 12 shared sentences showed them.
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])|\\(?=\s|$)")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?)])")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Citation:
    offset: int  # in the sentence's raw text
    raw: str
    seconds: int | None  # None: malformed, reported and not used as a time


@dataclass(frozen=True, slots=True)
class Cleaned:
    text: str
    links: tuple[str, ...]
    citations: tuple[Citation, ...]


def _drop_gone(text: str) -> str:
    """Remove the citations' marks and what only they held together."""
    if _GONE not in text:
        return text
    text = _BETWEEN_GONE.sub("", text)
    text = _AROUND_GONE.sub(_GONE, text)

    def _after(m: re.Match[str]) -> str:
        close = m["close"]
        if close is None:
            return " "
        opener = "[" if close.strip() == "]" else "("
        # a closer whose opener went with the first citation of a list
        unmatched = text.count(close.strip()) > text.count(opener)
        return " " if unmatched else f" {close.strip()}"

    text = _AFTER_GONE.sub(_after, text)
    return _DOUBLE_STOP.sub(".", text)


def _plain(text: str) -> str:
    return _SPACES.sub(" ", _EMPHASIS.sub("", text.replace(_GONE, " "))).strip().lower()


def _said_already(words: str, before: str, after: str) -> bool:
    """Whether a link's words repeat what its sentence says: the words right
    before the link ("… meaningful connections [[slug | meaningful connections]]"),
    or, for a link that ends the sentence, two words or more said earlier in it
    ("… of tissues [[slug | alleviate muscle stiffness]]." after "help alleviate
    muscle stiffness").
    An anchor restated as a link's words, which the page showed twice (339 in
    the shared wiki); the link stays a link."""
    said, head = _plain(words), _plain(before)
    if not any(c.isalpha() for c in said):
        return False
    if f" {head}".endswith(f" {said}"):  # whole words: "distress [[slug | stress]]" says it once
        return True
    # Earlier in the sentence, two words at least: one may be needed again
    # ("… recover lost sleep … affecting nighttime [[slug | sleep]].").
    many = " " in said
    return many and _ENDS.fullmatch(after) is not None and f" {said} " in f" {head} "


def _tidy(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = text.replace("( ", "(").replace("()", "")
    # again: a citation in parentheses leaves "grams ()." -> "grams ."
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip()


def clean_plain(raw: str) -> Cleaned:
    citations = tuple(
        Citation(m.start(), m.group(0), parse_hms(m["t"])) for m in CITE_TEXT.finditer(raw)
    )
    text = CITE_TEXT.sub(" ", raw)
    links: list[str] = []

    def _link(m: re.Match[str]) -> str:
        links.append(m["slug"])
        return ""

    text = LINK_TEXT.sub(_link, text)
    return Cleaned(_tidy(text), tuple(links), citations)


def clean_markdown(raw: str) -> Cleaned:
    citations: list[Citation] = []

    def _cite(m: re.Match[str]) -> str:
        clock = m["clock"] or m["pclock"] or m["lclock"]
        if clock is not None:
            seconds = parse_hms(clock)
        else:
            good = m["close"] == ">" and m["unclosed"] is None
            seconds = parse_hms(m["t"]) if good else None
        citations.append(Citation(m.start(), m.group(0), seconds))
        return _GONE

    # One pass for both forms, before links: a clock is sometimes a link's words
    # ("[[slug | [01:39:35]]]"), and a tag's own "[01:02:03]" is not a second one.
    text = _CITE_MD_ANY.sub(_cite, raw)
    links: list[str] = []

    def _link(m: re.Match[str]) -> str:
        slug = m["slug"].strip()
        if m["words"] is None and " " in slug and any(c.isalpha() for c in slug):
            # "[[desire for evidence]]": words bracketed as a link to no page
            # (a slug has no spaces); they are part of the sentence (9 shared).
            return slug
        links.append(slug)
        words = m["words"] or ""
        return "" if _said_already(words, m.string[: m.start()], m.string[m.end() :]) else words

    text = LINK_MD.sub(_link, text)
    text = LINK_BROKEN.sub(lambda m: (_link(m) or "").strip(" +"), text)
    text = _LINK_SINGLE.sub(_link, text)
    text = _MD_LINK.sub(lambda m: m["words"], text)

    def _bare(m: re.Match[str]) -> str:
        links.append(m.group())
        return m.group().replace("_", " ")

    text = _BARE_SLUG.sub(_bare, text)  # after Markdown links, whose targets are slugs
    text = _HTML_TAG.sub(" ", text)
    text = _CALLOUT.sub("", text)
    text = _FENCE.sub(" ", text)
    text = _EMPHASIS.sub("", text)
    text = _ESCAPE.sub(lambda m: m[1] or "", text)
    return Cleaned(_tidy(_drop_gone(text)), tuple(links), tuple(citations))
