"""The wiki parsers: the seed (plain text) and the shared Markdown pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest import load, parse, passages
from ingest.catalog import read_csv
from ingest.chunking import _pack
from ingest.clock import parse_hms
from ingest.errors import DocumentError
from ingest.records import Document, Sentence
from tests.conftest import CORPUS, SEED

HEADINGS = [
    "Ketamine and NMDA Receptor Antagonists",
    "Mechanism of Action",
    "Clinical Implications",
    "Psilocybin and Serotonin Receptor Modulation",
    "Scientific Insights",
    "Therapeutic Outcomes",
    "Conclusion",
]


_RESIDUE = re.compile(r"[\[(][\s,;]*[\])]|[,;]\s*\]")
_CLOCK = re.compile(r"\[\d{1,2}:\d{2}(?::\d{2})?\]|\(\d{1,2}:\d{2}:\d{2}[-)]")


def _source(path: str) -> str:
    with open(path, newline="", encoding="utf-8") as fh:
        return fh.read()


_TAG = '<a class="yt-timestamp" data-t="{0}">[{0}]</a>'


def _page(tmp_path: Path, body: str) -> Document:
    """A Markdown page whose one section holds ``body``, parsed."""
    page = tmp_path / "page.md"
    page.write_text(f"---\ntitle: T\nvideoId: abc\n---\n\n## H\n\n{body}", encoding="utf-8")
    return parse(page)


def _times(d: Document) -> dict[str, float | None]:
    """Each sentence's text and its cited second."""
    return {s.text: (s.time.seconds if s.time else None) for s in d.sentences}


@pytest.fixture(scope="module")
def seed():  # type: ignore[no-untyped-def]
    return parse(SEED, catalog=read_csv(CORPUS / "catalog.csv"))


def test_seed_headings_and_episode(seed) -> None:  # type: ignore[no-untyped-def]
    assert [s.trail[-1] for s in seed.sections if s.trail] == HEADINGS
    assert seed.channel == "hubermanlab"
    assert seed.episode is not None and seed.episode.id == "Xu1FMCxoEFc"
    assert seed.episode.date == "2021-08-23"
    assert seed.issues == ()


def test_seed_every_timestamp_found_in_source(seed) -> None:  # type: ignore[no-untyped-def]
    raw = _source(str(SEED))
    cited = sorted(parse_hms(t) for t in re.findall(r"\[(\d\d:\d\d:\d\d)\]", raw))
    times = sorted(int(s.time.seconds) for s in seed.sentences if s.time)
    assert times == cited
    assert len(times) == 6
    for s in seed.sentences:
        if s.time:
            assert s.time.exact
            # the citation is inside the sentence's own verbatim span
            assert f"[{s.time.label.zfill(8)}]" in raw[s.start : s.end]


def test_seed_offsets_slice_back_and_links_leave_text(seed) -> None:  # type: ignore[no-untyped-def]
    raw = _source(str(SEED))
    for s in seed.sentences:
        verbatim = raw[s.start : s.end]
        assert verbatim == verbatim.strip()
        for word in re.findall(r"[A-Za-z]{4,}", s.text):
            assert word in verbatim
        assert "[" not in s.text and "_" not in s.text
        for link in s.links:
            assert link in verbatim and link not in s.text
    links = {link for s in seed.sentences for link in s.links}
    assert "ketamine_and_neuroplasticity" in links
    assert len(links) == 10


def test_seed_sentence_with_abbreviation_is_one_sentence(seed) -> None:  # type: ignore[no-untyped-def]
    vesuna = [s for s in seed.sentences if "Vesuna" in s.text]
    assert len(vesuna) == 1 and vesuna[0].text.endswith("dissociative states.")
    assert vesuna[0].time is not None and vesuna[0].time.label == "1:23:04"


def test_anchor_rule(seed) -> None:  # type: ignore[no-untyped-def]
    ps = {p.section[-1] if p.section else "": p for p in passages(seed)}
    # its own first citation: exact
    assert ps["Mechanism of Action"].anchor is not None
    assert (
        ps["Mechanism of Action"].anchor.exact and ps["Mechanism of Action"].anchor.seconds == 4920
    )
    # no citation in the section: no time at all, never an invented one
    assert ps["Ketamine and NMDA Receptor Antagonists"].anchor is None
    assert ps["Conclusion"].anchor is None


def test_approximate_anchor_from_section(tmp_path: Path) -> None:
    doc = tmp_path / "page.txt"
    doc.write_text(
        "From: chan\nTopic\n"
        + "First paragraph says something with a time [00:10:00].\n"
        + " ".join(["Another long sentence about nothing in particular here."] * 30)
        + "\n",
        encoding="utf-8",
    )
    ps = passages(parse(doc))
    assert len(ps) >= 2
    assert ps[0].anchor is not None and ps[0].anchor.exact
    later = ps[-1]
    assert later.anchor is not None and not later.anchor.exact and later.anchor.seconds == 600


def test_passages_stay_inside_sections_and_model_window(seed) -> None:  # type: ignore[no-untyped-def]
    raw = _source(str(SEED))
    for p in passages(seed):
        span = raw[p.start : p.end]
        assert not any(h == line.strip() for h in HEADINGS for line in span.splitlines()[1:])
        assert len(p.embed_text().split()) < 200


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("01:22:00", 4920),
        ("1:22:00", 4920),
        ("09:01", 541),
        ("99:99:99", None),
        ("1:2", None),
        ("HH:MM:SS", None),
        ("00:61:00", None),
        ("12:03:04:05", None),
    ],
)
def test_timecodes(value: str, seconds: int | None) -> None:
    assert parse_hms(value) == seconds


def test_malformed_citations_reported_with_line(tmp_path: Path) -> None:
    doc = tmp_path / "bad.txt"
    doc.write_text(
        "From: chan\nHeading\nGood claim here [00:01:00]. Bad claim [99:99:99].\n"
        "Another bad one [1:2]. Fine [05:07].\n",
        encoding="utf-8",
    )
    d = parse(doc)
    msgs = [str(i) for i in d.issues]
    assert len(msgs) == 2
    assert msgs[0].startswith(f"{doc}:3:") and "99:99:99" in msgs[0]
    assert msgs[1].startswith(f"{doc}:4:") and "1:2" in msgs[1]
    texts = {s.text: s.time for s in d.sentences}
    assert texts["Bad claim."] is None  # text kept, time dropped
    assert texts["Good claim here."] is not None
    assert texts["Fine."] is not None and texts["Fine."].seconds == 307


def test_markdown_citations_written_as_text(tmp_path: Path) -> None:
    # 59 of the shared wiki's pages cite as the plain export does, "[00:08:45]",
    # or as a Markdown link whose words are the clock; before, such a sentence
    # showed "([00:08:45])" in its text and said "(no time)".
    d = _page(
        tmp_path,
        "Take 3 to 5 grams ([00:08:45]). Colds spread by touch. [00:06:00] "
        "Sensors respond ([01:15:56](#01:15:56)). See [[heat | [01:39:35]]].\n\n"
        "A footnote [1] stays. Bad [:11:39] one.\n",
    )
    assert _times(d) == {
        "Take 3 to 5 grams.": 525,
        "Colds spread by touch.": 360,
        "Sensors respond.": 4556,
        "See.": 5975,
        "A footnote [1] stays.": None,
        "Bad one.": None,
    }
    assert all(s.time is None or s.time.exact for s in d.sentences)
    page = tmp_path / "page.md"
    assert [str(i) for i in d.issues] == [f"{page}:10: malformed citation '[:11:39]' dropped"]


def test_citations_in_parentheses(tmp_path: Path) -> None:
    # 57 citations in 12 shared pages are a clock in parentheses (alone, as a
    # range, or as a wiki link's words) or a link's words alone; before, the
    # sentence showed "(00:32:00)"
    # and said "(no time)".  A time of day in parentheses is not a citation.
    d = _page(
        tmp_path,
        "Strength training combats sarcopenia [[muscle | (00:32:00)]]. "
        "Breasts develop in females (0:07:53-0:08:06). Rest consolidates (00:00:27). "
        "Pain peaks near dawn (4:00). Water holds particles ([[plastics | 00:22:36]]).\n",
    )
    assert _times(d) == {
        "Strength training combats sarcopenia.": 1920,
        "Breasts develop in females.": 473,  # a range is cited at its start
        "Rest consolidates.": 27,
        "Pain peaks near dawn (4:00).": None,
        "Water holds particles.": 1356,
    }
    assert d.sentences[0].links == ("muscle",)


def test_a_list_of_citations_leaves_no_punctuation(tmp_path: Path) -> None:
    # "[t, t]", "([t](#), [t](#))", "[(t)]": once the citations were gone, their
    # brackets and commas were left ("attention, ].", "effects (,).").  Words
    # bracketed as a link to no page ("[[desire for evidence]]") were dropped,
    # and a broken link lost its first letter ("addictive icotine_brain |.").
    d = _page(
        tmp_path,
        f"Drugs enhance attention [{_TAG.format('00:01:12')}, {_TAG.format('01:55:19')}]. "
        "MDMA is empathogenic ([00:00:15](#t=00:00:15), [00:19:02](#t=00:19:02)). "
        "Exams preserve vision [[eyes]] [02:07:31], [02:20:02]. "
        "Skepticism involves a [[desire for evidence]] (see the study [00:01:00]). "
        f"Vapes are addictive [[nicotine_brain | ({_TAG.format('00:36:57')})]. "
        'Rats change in utero [[toxins | (from disruptors)]] [(<a class="yt-timestamp" '
        'data-t="00:14:15">00:14:15</a>)].\n',
    )
    assert _times(d) == {
        "Drugs enhance attention.": 72,
        "MDMA is empathogenic.": 15,
        "Exams preserve vision.": 7651,
        "Skepticism involves a desire for evidence (see the study).": 60,
        "Vapes are addictive.": 2217,  # a link broken in the source: "]" for "]]"
        "Rats change in utero (from disruptors).": 855,
    }
    assert [s.links for s in d.sentences][2:] == [("eyes",), (), ("nicotine_brain",), ("toxins",)]


def test_a_links_words_that_repeat_its_sentence_are_not_shown_twice(tmp_path: Path) -> None:
    # 339 shared links restate their anchor as their words: "… meaningful
    # connections [[slug | meaningful connections]]" read "connections meaningful
    # connections".  Markdown escapes (a backslash before "[" or "<a") left "(\)"
    # in 12 sentences.
    d = _page(
        tmp_path,
        "Media foster meaningful connections [[social | meaningful connections]]. "
        "Rolling can alleviate muscle stiffness of tissues "
        "[[fascia | alleviate muscle stiffness]]. "
        "Naps recover lost sleep but can cost nighttime [[naps | sleep]]. "
        "Minutes of general flexibility [[fit | flexibility]] and strength help. "
        "Walks ease distress [[calm | stress]]. "
        f"Sun ages skin (\\{_TAG.format('00:20:12')}). "
        f"Variation prevents plateaus. \\[{_TAG.format('00:01:29')}\\]\n",
    )
    assert _times(d) == {
        "Media foster meaningful connections.": None,
        "Rolling can alleviate muscle stiffness of tissues.": None,
        "Naps recover lost sleep but can cost nighttime sleep.": None,  # one word: kept
        "Minutes of general flexibility and strength help.": None,
        "Walks ease distress stress.": None,  # whole words only
        "Sun ages skin.": 1212,
        "Variation prevents plateaus.": 89,
    }
    assert [s.links for s in d.sentences][:4] == [("social",), ("fascia",), ("naps",), ("fit",)]


def test_single_bracket_links_and_bare_slugs_read_as_words(tmp_path: Path) -> None:
    # "([slug | words])" and a slug left bare mid-sentence showed their
    # underscores; a citation after a colon left ":.".
    d = _page(
        tmp_path,
        "Screens intrude at night ([tech_and_sleep | and disrupt thinking]). "
        "Play fell ([social_connections_and_stress]). "
        "Bulimia is fueled by the_impact_of_dopamine_on_craving. "
        "Peptides heal ([peptide_therapies_for_health](peptide_therapies_for_health)). "
        "See the segment: [01:02:03]. No room for free will [source].\n",
    )
    assert [s.text for s in d.sentences] == [
        "Screens intrude at night (and disrupt thinking).",
        "Play fell.",
        "Bulimia is fueled by the impact of dopamine on craving.",
        "Peptides heal (peptide therapies for health).",
        "See the segment.",
        "No room for free will [source].",  # a footnote, not a slug
    ]
    assert d.sentences[0].links == ("tech_and_sleep",)
    assert d.sentences[2].links == ("the_impact_of_dopamine_on_craving",)


def test_a_line_that_only_cites_is_the_citation_of_the_sentence_before(tmp_path: Path) -> None:
    # "- **Reference**: [t] and [t]", "(Timecode: [t])", a bare citation on a
    # line of its own: before, each was a sentence ("Reference: and") and the
    # claim it cites had no time.  The article's "```markdown" fence is no sentence.
    page = tmp_path / "page.md"
    page.write_text(
        "---\ntitle: T\nvideoId: abc\n---\n\n```markdown\n\n## H\n\n"
        "Alcohol fragments sleep.\n"
        f"**Reference**: {_TAG.format('00:22:12')} and {_TAG.format('00:27:47')}\n\n"
        f"Caffeine lasts. (Timecode: {_TAG.format('00:17:58')})\n\n"
        f"Binge eating is compulsive.\n\n{_TAG.format('01:54:00')} - {_TAG.format('01:54:42')}\n\n"
        f"Light helps [00:01:00].\n- **Reference**: {_TAG.format('00:09:00')}\n\n"
        f"## Alone\n\n{_TAG.format('00:05:00')}\n\nNo claim before that one.\n",
        encoding="utf-8",
    )
    d = parse(page)
    raw = page.read_text(encoding="utf-8")
    assert _times(d) == {
        "Alcohol fragments sleep.": 1332,
        "Caffeine lasts.": 1078,
        "Binge eating is compulsive.": 6840,
        "Light helps.": 60,  # its own citation first
        "No claim before that one.": None,  # a heading ends what a citation can reach
    }
    first = d.sentences[0]
    assert raw[first.start : first.end].endswith("[00:27:47]</a>")  # the span reaches over it


def test_bad_documents_do_not_lose_the_others(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("From: c\nHeading\nA fine sentence [00:00:05].\n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad bytes\n")
    (tmp_path / "empty.md").write_text("---\ntitle: Empty\n---\n")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")  # not ours: passed over inside a folder
    loaded = load([tmp_path])
    assert [d.id for d in loaded.documents] == ["good.txt"]
    errors = sorted(str(e) for e in loaded.errors)
    assert len(errors) == 2
    assert "binary.txt:1: not UTF-8" in errors[0]
    assert "empty.md:4: no text to index" in errors[1]


def test_named_unsupported_file_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "x.pdf"
    f.write_bytes(b"%PDF")
    loaded = load([f, tmp_path / "missing.txt"])
    assert len(loaded.errors) == 2
    with pytest.raises(DocumentError):
        parse(f)


def test_markdown_seed_twin(shared: Path) -> None:
    md = shared / "wiki" / "hubermanlab" / "experimental_treatments_for_depression.md"
    d = parse(md)
    assert d.title == "Experimental treatments for depression"
    assert d.episode is not None and d.episode.id == "Xu1FMCxoEFc"
    trails = [s.trail for s in d.sections]
    assert ("Ketamine and NMDA Receptor Antagonists", "Mechanism of Action") in trails
    seed = parse(SEED)
    assert sorted(s.time.seconds for s in d.sentences if s.time) == sorted(
        s.time.seconds for s in seed.sentences if s.time
    )


def test_all_shared_pages_parse(shared: Path) -> None:
    loaded = load([shared / "wiki"])
    # 1,117 files: 1,116 topic pages, and hubermanlab.md, which is read as the catalog
    assert len(loaded.documents) == 1116
    assert [p.name for p in loaded.catalog_files] == ["hubermanlab.md"]
    assert not loaded.errors
    assert len(loaded.catalog) >= 200
    raw_cache: dict[str, str] = {}
    markup_left = 0
    for d in loaded.documents:
        raw = raw_cache.setdefault(d.path, _source(d.path))
        assert d.episode is not None
        for s in d.sentences:
            assert raw[s.start : s.end].strip() == raw[s.start : s.end]
            if s.time:
                # every exact time is found again in the raw sentence
                label = s.time.label
                assert any(
                    v in raw[s.start : s.end]
                    for v in (label, label.zfill(8), label[2:] if label.startswith("0:") else label)
                )
            markup_left += "yt-timestamp" in s.text or "[[" in s.text
            markup_left += bool(_CLOCK.search(s.text))  # a citation left as text
            markup_left += bool(_RESIDUE.search(s.text))  # what a citation list held
    assert markup_left == 0


def test_a_lead_in_goes_with_what_it_introduces(tmp_path: Path) -> None:
    # The shared wiki's pages open with "Here is the article:" and give a
    # list's lead-in a paragraph of its own; alone, each was a result that
    # said nothing.
    page = tmp_path / "page.md"
    page.write_text(
        "---\ntitle: Light and mood\nvideoId: abc\n---\n\n"
        "Here is the article:\n\n"
        "Light sets the clock. Morning light matters most.\n\n"
        "## Pathways\n\n"
        "There are two major pathways out of the amygdala:\n\n"
        "- One goes to the hypothalamus.\n"
        "- One goes to the brainstem.\n\n"
        "## Reference\n\n"
        "Reference:\n",
        encoding="utf-8",
    )
    texts = [[s.text for s in p.sentences] for p in passages(parse(page))]
    assert texts[0][:2] == ["Here is the article:", "Light sets the clock."]
    # Each list item is a paragraph: the lead-in takes the first with it.
    assert texts[1] == [
        "There are two major pathways out of the amygdala:",
        "One goes to the hypothalamus.",
    ]
    # A lead-in with nothing after it in its section stays: never text dropped.
    assert texts[-1] == ["Reference:"]
    raw = page.read_text(encoding="utf-8")
    for p in passages(parse(page)):
        for s in p.sentences:  # offsets still point at each sentence's verbatim text
            assert raw[s.start : s.end].lstrip("-* ").startswith(s.text[:8])


def test_a_long_paragraph_never_ends_a_passage_on_its_lead_in() -> None:
    ten = "one two three four five six seven eight nine"
    said = [Sentence(10 * i, 10 * i + 9, f"{ten} {i}.") for i in range(6)]
    said[2] = Sentence(20, 29, f"{ten} these:")
    groups = _pack(said, max_words=30)
    # Split after the third sentence, the lead-in goes with what it
    # introduces, and the cap still holds (the model reads 256 word pieces).
    assert [len(g) for g in groups] == [2, 3, 1]
    assert groups[1][0].leads_in
    assert all(sum(len(x.text.split()) for x in g) <= 30 for g in groups)
    plain = [Sentence(10 * i, 10 * i + 9, f"{ten} {i}.") for i in range(6)]
    assert [len(g) for g in _pack(plain, max_words=30)] == [3, 3]
