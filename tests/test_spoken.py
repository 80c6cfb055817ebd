"""A long spoken sentence cut into pieces at cues: an answer shows the piece
the ranking chose with the pieces that finish it, at the chosen piece's own
time, and says where it still begins or ends inside the sentence (pure:
hand-made passages and cosines, no model; the parser's cut is tested in
tests/test_transcript.py)."""

from __future__ import annotations

import numpy as np

from index.records import AnswerSentence, Hit
from index.search import choose_answer
from index.spoken import asks, begins_mid, finished, spoken_end
from ingest.records import Passage, Sentence, Time


def _window(i: int, pieces: list[str], t0: float = 60.0, doc: str = "ep") -> Passage:
    said = tuple(
        Sentence(1000 * i + 100 * j, 1000 * i + 100 * j + 90, t, Time(t0 + 10 * j, exact=True))
        for j, t in enumerate(pieces)
    )
    return Passage(f"p{i}", doc, "Ep", "transcript", None, None, (), said, None)


SUN = [
    "We come to sunlight and the need for viewing the maximum amount",
    "of sunlight that one can get in the early part of the day.",
    "Within the first hour of waking, get sunlight in your eyes.",
]


def test_what_finishes_a_sentence() -> None:
    assert finished("It works.") and finished("Does it?") and finished('He said "no."')
    assert finished("and then…") and finished("(see the study.)")
    assert not finished("the need for viewing the maximum amount")
    assert not finished("Cold exposure:") and not finished("")


def test_a_piece_runs_to_the_piece_that_finishes_it_within_its_passage() -> None:
    said = _window(0, SUN).sentences
    assert spoken_end(said, 0) == 1  # "... maximum amount" + "of sunlight ... day."
    assert spoken_end(said, 1) == 1 and spoken_end(said, 2) == 2
    run_on = _window(1, ["one", "two", "three", "four", "five."]).sentences
    assert spoken_end(run_on, 0) == 2  # at most two more pieces
    assert spoken_end(run_on, 0, most=9) == 4
    assert spoken_end(_window(2, ["cut at the window's end"]).sentences, 0) == 0
    assert begins_mid(said, 1) and not begins_mid(said, 0) and not begins_mid(said, 2)
    assert begins_mid(_window(3, ["of sunlight in the morning."]).sentences, 0)
    assert not begins_mid(_window(4, ["5 minutes is enough."]).sentences, 0)


def test_a_sentence_that_asks() -> None:
    def said(*pieces: str) -> bool:
        return asks(_window(0, list(pieces)).sentences, 0)

    assert said("So how cold should the water be?")
    assert said("So the most common question I get is,", "how cold should the water be?")
    assert said('He asked "why not?"') and said("If they're exhaling, they can punch faster?")
    # a statement closed by a tag still states
    assert not said("Chocolate raises dopamine 1.5 times, okay?")
    assert not said("It is pressure on the arteries, veins, and capillaries, right?")
    assert not said("Uncomfortably cold, but safe to stay in.") and not said("Why? Nobody knows.")
    assert said("Does it begin with an awareness, with practice, or both?")  # no tag


def test_a_question_asked_in_the_episode_does_not_lead_the_answer() -> None:
    p = _window(
        0,
        [
            "So the most common question I get is, how cold should the water be?",
            "We've answered that with uncomfortably cold, but safe to stay in.",
        ],
    )
    hits = [Hit(p, 0.8, 0, row=0)]
    sims = [np.array([0.80, 0.77], np.float32)]
    assert [c.sentence for c in choose_answer(hits, sims, threshold=0.5)] == [1, 0]
    # far ahead, it still leads: the library may say nothing closer
    far = [np.array([0.95, 0.70], np.float32)]
    assert choose_answer(hits, far, threshold=0.5)[0].sentence == 0


def test_an_answer_shows_a_spoken_sentence_whole_from_its_chosen_piece() -> None:
    p = _window(0, SUN)
    hits = [Hit(p, 0.8, 0, row=0)]
    chosen = choose_answer(hits, [np.array([0.9, 0.5, 0.85], np.float32)], threshold=0.5)
    first = chosen[0]
    assert first.sentence == 0 and first.through == 1
    assert first.text == f"{SUN[0]} {SUN[1]}"
    assert not first.begins_mid and not first.ends_mid
    # Its time is the chosen piece's own exact one: the text starts there.
    assert first.time == Time(60.0, exact=True)
    assert [c.sentence for c in chosen] == [0, 2]


def test_a_piece_already_shown_is_not_shown_again() -> None:
    # The continuation scores best; the piece before it, shown whole, would
    # repeat it, so the next answer sentence is the next sentence instead.
    p = _window(0, SUN)
    hits = [Hit(p, 0.8, 0, row=0)]
    chosen = choose_answer(hits, [np.array([0.88, 0.9, 0.85], np.float32)], threshold=0.5)
    assert [(c.sentence, c.through) for c in chosen] == [(1, 1), (2, 2)]
    assert chosen[0].begins_mid and not chosen[0].ends_mid
    # Derived from the passage, not stored: a piece alone says the same.
    assert AnswerSentence(hits[0], 1, 0.9).begins_mid
    assert AnswerSentence(hits[0], 0, 0.9).ends_mid  # "... the maximum amount" alone


def test_overlapping_windows_show_one_sentence_once() -> None:
    # Transcript windows overlap: the same spoken words, in two results.
    a, b = _window(0, SUN[:2]), _window(1, SUN[:2])
    b = Passage("p1", "ep", "Ep", "transcript", None, None, (), a.sentences, None)
    hits = [Hit(a, 0.8, 0, row=0), Hit(b, 0.79, 0, row=1)]
    sims = [np.array([0.9, 0.5], np.float32), np.array([0.9, 0.5], np.float32)]
    assert [(c.hit.row, c.sentence) for c in choose_answer(hits, sims, threshold=0.5)] == [(0, 0)]


def test_a_window_cut_mid_sentence_says_so_and_wiki_sentences_are_left_alone() -> None:
    p = _window(0, ["The study found that people who", "slept well"])  # the window ends here
    chosen = choose_answer([Hit(p, 0.8, 0, row=0)], [np.array([0.9, 0.2], np.float32)], 0.5)
    assert chosen[0].through == 1 and chosen[0].ends_mid
    said = (Sentence(0, 9, "Cold exposure"), Sentence(10, 19, "raises dopamine"))
    wiki = Passage("w", "page", "Page", "wiki", None, None, (), said, None)
    only = choose_answer([Hit(wiki, 0.8, 0, row=0)], [np.array([0.9, 0.2], np.float32)], 0.5)
    assert only[0].through is None and only[0].text == "Cold exposure"
    assert not only[0].ends_mid
    assert AnswerSentence(Hit(wiki, 0.8, 0), 0, 0.9).text == "Cold exposure"


def test_the_terminal_marks_where_a_piece_begins_or_ends_inside_a_sentence(capsys) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace as NS

    from server.schemas import AnswerOut, DocumentOut, EpisodeOut, ResultOut
    from server.terminal import print_answer

    said = AnswerOut(
        text="of sunlight early in the day.",
        timestamp=None,
        url=None,
        result_id="p0",
        begins_mid_sentence=True,
    )
    # The schema's own objects, as `podcite ask` prints them; the fields a
    # result's line does not read are left out (model_construct).
    result = ResultOut.model_construct(
        rank=1,
        episode=EpisodeOut.model_construct(title="Ep 80"),
        document=DocumentOut.model_construct(title="Ep 80"),
        section=[],
        timestamp=None,
        url=None,
        text="words",
        heard=None,
        links=[],
    )
    doc = NS(query="sunlight", took_ms=3.0, answer=[said], results=[result])
    print_answer(doc, abstained=False)
    out = capsys.readouterr().out
    assert "…of sunlight early in the day." in out
    assert out.count("Ep 80") == 1  # a transcript's document is its episode: named once
