"""Abstention's third signal: a question naming people or products that its
first result holds is held to a lower threshold (index/coverage.py
``names_met``; docs/benchmarks.md, "A proper name the first result holds").
Pure rules on hand-made input, then the one query path on the seed's real index."""

from __future__ import annotations

from index.backend import Index
from index.coverage import holds, names_met, proper_names
from index.metrics import calibrate
from index.query import Options, parse, run
from index.records import ABSTAIN_BELOW, ABSTAIN_NAMED_BELOW, Hit
from index.search import abstains_at, named_threshold
from ingest.records import Passage, Sentence

COMMON = frozenset(
    {"cold", "water", "how", "does", "plunge", "into", "what", "make", "oat", "milk"}
)


def test_proper_names_are_capitalised_uncommon_words_not_first() -> None:
    q = "How cold is the water Rhonda Patrick plunges into?"
    assert proper_names(q, COMMON) == ["rhonda", "patrick"]
    # The first word is capitalised by grammar, not because it names someone.
    assert proper_names("Tongkat ali from where?", COMMON) == []
    # Uncommon but lower case: a thing, not a name ("oat milk" is common anyway).
    assert proper_names("how do I make homemade marshmallows?", COMMON) == []
    assert proper_names("What did Neuralink's monkeys earn?", COMMON) == ["neuralink"]


def test_a_passage_holds_names_only_all_of_them() -> None:
    tokens = {"rhonda", "patrick", "cold"}
    assert holds(["rhonda", "patrick"], tokens)
    assert not holds(["rhonda", "balcetis"], tokens)
    assert not holds([], tokens)  # no name: nothing held


def test_names_met_reads_the_first_result_only() -> None:
    def hit(i: int, text: str) -> Hit:
        said = (Sentence(0, len(text), text),)
        return Hit(Passage(f"p{i}", "d", "Cold", "wiki", None, None, (), said, None), 0.4, 0)

    q = "How cold is the water Rhonda Patrick plunges into?"
    held, other = hit(0, "Dr. Rhonda Patrick plunges at 49 F."), hit(1, "Cold water.")
    assert names_met(q, [held, other], COMMON)
    assert not names_met(q, [other, held], COMMON)
    assert not names_met(q, [], COMMON)


def test_the_named_threshold_never_raises_and_yields_to_an_unknown_word() -> None:
    assert named_threshold(0.5, True, False) == ABSTAIN_NAMED_BELOW < 0.5
    assert named_threshold(0.5, False, False) == 0.5
    assert named_threshold(0.5, True, True) == 0.5  # a word the library never says wins
    assert named_threshold(0.3, True, False) == 0.3  # an operator's lower threshold stays
    best = 0.47  # between the two
    assert abstains_at(best, False, named_threshold(ABSTAIN_BELOW, False, False))
    assert not abstains_at(best, False, named_threshold(ABSTAIN_BELOW, True, False))


def test_calibrate_reads_the_named_questions() -> None:
    top, in_scope = [0.47, 0.47, 0.3], [True, False, False]
    plain = calibrate(top, in_scope, default=0.5)
    assert plain["default in-scope abstained"] == 1.0 and plain["default recall"] == 1.0
    named = calibrate(top, in_scope, default=0.5, named=[True, True, False])
    assert named["default in-scope abstained"] == 0.0 and named["default recall"] == 0.5


def test_the_query_path_holds_a_named_question_to_the_lower_threshold(seed_index: Index) -> None:
    # The seed names "Vesuna et al. 2020"; a threshold no cosine reaches makes
    # every question abstain, unless its named threshold is lower still.
    named = parse({"q": "What rhythm did Vesuna find in layer five neurons?"})
    plain = parse({"q": "What rhythm appears in layer five neurons?"})
    strict = Options(abstain_below=0.99, abstain_unknown_below=0.0, abstain_named_below=-1.0)
    got = run(seed_index, named, True, strict)
    assert not got.abstained and got.answer
    assert not any(h.weak for h in got.hits)
    assert run(seed_index, plain, True, strict).abstained
    # At or over abstain_below the reading is off: the question abstains again.
    off = Options(abstain_below=0.99, abstain_unknown_below=0.0, abstain_named_below=0.99)
    assert run(seed_index, named, True, off).abstained
