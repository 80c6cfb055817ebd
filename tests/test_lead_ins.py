"""Lead-ins ("Here is the article:", "... in three ways:") and pointers ("For
more on exercise, see …"): never a result's highlighted sentence nor an answer
while their passage says more (pure: hand-made vectors, no model).  The passage
rule that joins lead-ins to what they introduce is tested with the wiki parser
(tests/test_wiki.py)."""

from __future__ import annotations

import numpy as np

from index.best import best_of
from index.records import Hit
from index.search import choose_answer
from ingest.records import Passage, Sentence


def _passage(i: int, text: str) -> Passage:
    said = [
        Sentence(100 * i + 10 * j, 100 * i + 10 * j + 9, t) for j, t in enumerate(text.split(". "))
    ]
    return Passage(f"p{i}", "d", "Doc", "wiki", None, None, (), tuple(said), None)


def test_a_sentence_that_leads_in_is_never_an_answer() -> None:
    # Wiki pages keep their writer's lead-ins ("Here is the revised article:"):
    # close to any question by their passage's score, they answer nothing.
    p = _passage(0, "Here is the revised article:. Psilocin binds the 5-HT2A receptor")
    hits = [Hit(p, 0.8, 0, row=0)]
    chosen = choose_answer(hits, [np.array([0.9, 0.85], np.float32)], threshold=0.5)
    assert [c.sentence for c in chosen] == [1]


def test_a_result_never_highlights_a_lead_in_while_its_passage_says_more() -> None:
    # A lead-in's vector reads its page's title with it, so it can sit closest
    # to the question; the card would then cite "Here is the article:".
    p = _passage(0, "Here is the article:. Light sets the clock. Morning light matters")
    v = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]], np.float32)
    q = np.array([1.0, 0.0], np.float32)
    assert best_of(v, q) == (0, 1.0)  # by the vectors alone
    j, cos = best_of(v, q, p.sentences)
    assert (j, round(cos, 3)) == (2, 0.8)
    only = _passage(1, "Reference:")  # nothing else to show: the lead-in it is
    assert best_of(v[:1], q, only.sentences) == (0, 1.0)


def test_a_sentence_that_points_elsewhere_is_no_answer_nor_a_cards_sentence() -> None:
    # "For more on light therapy, refer to …" led an answer about light therapy,
    # and "Explore more on the role of caffeine in sleep." a card: close to the
    # question by its words, they send the reader elsewhere.
    says = [
        "For more on light therapy, refer to light therapy and circadian biology",
        "Learn more about the role of deliberate cold exposure",
        "See The Impact of Technology on Focus for further discussion",
        "For more insights, you can watch the full discussion",
    ]
    assert all(Sentence(0, 1, t).points_elsewhere for t in says)
    still = [
        "For more severe cases, doctors recommend surgery",  # no pointing verb
        "Seeing light early in the day is key",
        "Explore using natural cleaning solutions",  # advice, not a pointer
    ]
    assert not any(Sentence(0, 1, t).points_elsewhere for t in still)
    p = _passage(0, f"{says[0]}. Bright light in the morning eases seasonal depression")
    hits = [Hit(p, 0.8, 0, row=0)]
    chosen = choose_answer(hits, [np.array([0.9, 0.85], np.float32)], threshold=0.5)
    assert [c.sentence for c in chosen] == [1]
    v = np.array([[1.0, 0.0], [0.8, 0.6]], np.float32)
    assert best_of(v, np.array([1.0, 0.0], np.float32), p.sentences)[0] == 1
