"""lsrl.cached: computed once per instance, stored in the instance, overridable like cached_property."""

from __future__ import annotations

from lsrl.cached import cached


class _Counter:
    calls = 0

    @cached
    def value(self) -> int:
        """The doc."""
        type(self).calls += 1
        return 41 + type(self).calls


def test_computed_once_per_instance_and_stored_in_it():
    a, b = _Counter(), _Counter()
    assert (a.value, a.value, b.value) == (42, 42, 43) and _Counter.calls == 2
    assert a.__dict__["value"] == 42  # later reads are plain attribute lookups
    assert _Counter.value.__doc__ == "The doc."


def test_an_assigned_value_wins_over_computing_it():
    c = _Counter()
    c.value = 7  # what Coeffs.__init__ does for `data`, which from_entries leaves to be computed
    assert c.value == 7
