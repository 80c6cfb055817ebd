"""Starting a local Ray: a start that times out is tried again after the half
session it left is cleared, and one that never succeeds is a ``BuildError``
naming the cause.  Pure logic (Ray's own start is exercised in test_ray)."""

from __future__ import annotations

import pytest

from index.errors import BuildError
from index.ray_ingest import start_with_retries


class FlakyStart:
    """``ray.init`` that fails ``failures`` times the way Ray 2.60 does."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls, self.resets = failures, 0, 0

    def init(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise Exception("The current node timed out during startup.")

    def reset(self) -> None:
        self.resets += 1


def test_a_start_that_times_out_is_tried_again() -> None:
    ray = FlakyStart(failures=2)
    start_with_retries(ray.init, ray.reset, tries=3)
    assert (ray.calls, ray.resets) == (3, 2)


def test_a_start_that_never_succeeds_names_its_cause() -> None:
    ray = FlakyStart(failures=5)
    with pytest.raises(BuildError, match=r"3 tries.*timed out during startup"):
        start_with_retries(ray.init, ray.reset, tries=3)
    assert (ray.calls, ray.resets) == (3, 3)


def test_a_start_that_succeeds_is_not_reset() -> None:
    ray = FlakyStart(failures=0)
    start_with_retries(ray.init, ray.reset)
    assert (ray.calls, ray.resets) == (1, 0)
