"""Which sentence of a passage a result shows and cites (pure: arrays in).

The one closest to the question, except a lead-in ("Here is the article:",
"... in three ways:", ``Sentence.leads_in``) where the passage has another
sentence: a lead-in sits close to any question about its page (its vector
reads the page's title and heading trail with it) and says nothing, so a
card highlighting it, at its passage's approximate time, cited nothing.
``index.search.hit_at`` (every result) and ``index.moment.candidate_moments``
(the second a window's result cites) both choose by it, so one window
shows one second wherever it is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ingest.records import Sentence


def best_of(
    sentence_vectors: NDArray[np.float32],
    q: NDArray[np.float32],
    sentences: Sequence[Sentence] = (),
) -> tuple[int, float]:
    """The sentence closest to the question, and its cosine; given the
    passage's ``sentences``, never a lead-in while another sentence is there."""
    sims = sentence_vectors @ q
    leads = [s.leads_in for s in sentences]
    if any(leads) and not all(leads):
        sims = np.where(np.array(leads), -np.inf, sims)
    j = int(np.argmax(sims))
    return j, float(sims[j])
