"""What kind of answer a question asks for (index/answer_type.py), and how
``choose_answer`` reads it: pure logic on hand-made passages and cosines."""

from __future__ import annotations

import numpy as np

from index.answer_type import (
    Quantity,
    asked_quantity,
    asked_words,
    asks_quantity,
    restates,
    states_number,
)
from index.records import Hit
from index.search import choose_answer
from tests.test_pure import _passage


def test_a_quantity_question_prefers_the_sentence_that_states_a_number() -> None:
    assert asks_quantity("How much dietary fiber do the Hadza eat each day?")
    assert asks_quantity("At what age does the window close?")
    assert not asks_quantity("Which receptor does psilocybin act on?")
    assert states_number("They eat 100 to 150 grams a day.")
    assert states_number("one to three Hertz")
    assert not states_number("The diet is mostly tubers and berries.")
    # Two sentences of one passage a hair apart: the one with the number leads
    # only where the question asks for a quantity.
    p = _passage(0, "Mostly tubers and berries. About 150 grams a day")
    hits, sims = [Hit(p, 0.7, 0)], [np.array([0.81, 0.80], np.float32)]
    assert choose_answer(hits, sims, threshold=0.5)[0].sentence == 0
    assert choose_answer(hits, sims, threshold=0.5, wants=Quantity())[0].sentence == 1
    # A clear lead is not overturned by the bonus.
    far = [np.array([0.90, 0.80], np.float32)]
    assert choose_answer(hits, far, threshold=0.5, wants=Quantity())[0].sentence == 0


def test_a_question_naming_the_kind_of_quantity_prefers_a_number_of_that_kind() -> None:
    how_long = asked_quantity("In the midday learning study, how long did the nap group sleep?")
    assert how_long is not None and how_long.unit is not None
    assert how_long.stated_in("Half the subjects napped for 90 minutes.")
    assert not how_long.stated_in("The nappers improved by 20% over the others.")
    assert not how_long.stated_in("They slept for a while.")  # a unit, but no number
    share = asked_quantity("What percentage of people respond?")
    assert share is not None and share.stated_in("About 30% respond.")
    assert not share.stated_in("It takes 30 minutes.")
    year = asked_quantity("In what year was lithium first tried?")
    assert year is not None and year.stated_in("Cade tried it in 1949.")
    assert not year.stated_in("He injected 2 guinea pigs.")
    many = asked_quantity("How many grams of fiber do they eat?")  # no kind named: any number
    assert many == Quantity() and many.stated_in("About 150 a day.")
    assert asked_quantity("Which receptor does psilocybin act on?") is None
    # The sentence with a number of the asked kind leads a close call; a
    # number of another kind earns nothing.
    p = _passage(0, "They improved by 20%. They napped for 90 minutes")
    hits, sims = [Hit(p, 0.7, 0)], [np.array([0.81, 0.80], np.float32)]
    assert choose_answer(hits, sims, threshold=0.5, wants=Quantity())[0].sentence == 0
    assert choose_answer(hits, sims, threshold=0.5, wants=how_long)[0].sentence == 1


def test_a_result_cites_the_sentence_stating_the_asked_quantity() -> None:
    # The card's sentence (and a transcript window's cited second) follows the
    # answer's rule: the setup a hair closer to the question loses to the figure.
    from index.best import best_of

    p = _passage(
        0,
        "The Judd papers followed people for years. "
        "They were free of symptoms half the time. They had 90 days",
    )
    v = np.array([[1.0, 0.0], [0.99, 0.141], [0.985, 0.172]], np.float32)
    q = np.array([1.0, 0.0], np.float32)
    assert best_of(v, q, p.sentences)[0] == 0
    fraction = asked_quantity(
        "What fraction of their time are people with bipolar I free of symptoms?"
    )
    j, cos = best_of(v, q, p.sentences, fraction)
    assert j == 1 and round(cos, 2) == 0.99  # the sentence's own cosine, not the bonus
    # A number of another kind earns nothing: "90 days" answers no fraction.
    v2 = np.array([[1.0, 0.0], [0.9, 0.436], [0.99, 0.141]], np.float32)
    assert best_of(v2, q, p.sentences, fraction)[0] == 0
    assert best_of(v2, q, p.sentences, asked_quantity("How long did they follow them?"))[0] == 2
    assert best_of(v, q, p.sentences, asked_quantity("Which receptor?"))[0] == 0


def test_a_sentence_that_only_restates_the_question_does_not_lead() -> None:
    q = "How do I get over jet lag?"
    asked = asked_words(q)
    assert restates(asked, "Many of you are jet lagged.")
    assert restates(asked, "And there's so much out there about jet lag.")
    assert not restates(asked, "Jet lag has two elements, travel fatigue and time zone shift.")
    assert not restates(asked, "No, as you get over it.")  # a yes or no answers
    when = "When was the first paper on jet lag published?"
    assert not restates(asked_words(when), "The first paper was in 1987.")
    did = "Did Neanderthals have spoken language?"  # a statement answers a yes-no question
    assert asked_words(did) == frozenset()
    assert not restates(asked_words(did), "Neanderthals had spoken language.")
    # Two sentences of one passage a hair apart: the one that tells more leads.
    p = _passage(0, "Many of you are jet lagged. Shift your temperature minimum each day")
    hits, sims = [Hit(p, 0.7, 0)], [np.array([0.81, 0.79], np.float32)]
    assert choose_answer(hits, sims, threshold=0.5)[0].sentence == 0  # no question given
    assert choose_answer(hits, sims, threshold=0.5, question=q)[0].sentence == 1
    far = [np.array([0.95, 0.79], np.float32)]  # a clear lead stays
    assert choose_answer(hits, far, threshold=0.5, question=q)[0].sentence == 0
