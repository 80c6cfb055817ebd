"""Which sentence of a passage a result shows and cites (pure: arrays in).

The one closest to the question, except a lead-in ("Here is the article:",
"... in three ways:", ``Sentence.leads_in``) or a pointer ("For more on
exercise, see …", ``Sentence.points_elsewhere``) where the passage has another
sentence: a lead-in sits close to any question about its page (its vector
reads the page's title and heading trail with it) and says nothing, so a
card highlighting it, at its passage's approximate time, cited nothing; a
pointer is close by the very words it names and sends the reader elsewhere.
``index.search.hit_at`` (every result) and ``index.moment.candidate_moments``
(the second a window's result cites) both choose by it, so one window
shows one second wherever it is read.

A question asking for a quantity ("how much", "what fraction") gives the
sentences stating one of that kind the small bonus the answer's choice gives
them (``index.answer_type``): the sentence cosine cannot see a number, and a
card citing the sentence before the figure cited a setup, not the answer
(docs/benchmarks.md, "The asked quantity in a result's best sentence").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from index.answer_type import NUMBER_BONUS

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from index.answer_type import Quantity
    from ingest.records import Sentence


def best_of(
    sentence_vectors: NDArray[np.float32],
    q: NDArray[np.float32],
    sentences: Sequence[Sentence] = (),
    wants: Quantity | None = None,
) -> tuple[int, float]:
    """The sentence closest to the question, and its cosine; given the
    passage's ``sentences``, never a lead-in or a pointer while another is there,
    and where the question asks for a quantity (``wants``), a sentence stating
    one of its kind ahead by ``NUMBER_BONUS``."""
    sims = sentence_vectors @ q
    score = sims
    if wants is not None and sentences:
        stated = [NUMBER_BONUS if wants.stated_in(s.text) else 0.0 for s in sentences]
        score = sims + np.array(stated, dtype=sims.dtype)
    leads = [s.says_nothing for s in sentences]
    if any(leads) and not all(leads):
        score = np.where(np.array(leads), -np.inf, score)
    j = int(np.argmax(score))
    return j, float(sims[j])
