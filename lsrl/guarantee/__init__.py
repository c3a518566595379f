"""What a compiled model guarantees: range facts for backends, error propagation, promises, certificates."""

from lsrl.guarantee.facts import Facts, range_facts
from lsrl.guarantee.promise import BOUNDED, CLASSES, EXACT, FLOAT_EXACT, PLATFORM, OutputPromise, Promise

__all__ = ["BOUNDED", "CLASSES", "EXACT", "FLOAT_EXACT", "PLATFORM", "Facts", "OutputPromise", "Promise",
           "range_facts"]
