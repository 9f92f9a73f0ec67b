"""The garbage collector, told what a long-running exporter keeps.

A full collection walks every container object the process tracks, and stops the event
loop meanwhile (scrapes wait). Two things make those walks rarer and shorter:

- What exists once the daemon has started (modules, classes, functions, the config:
  about 47,000 objects) lives as long as the process: `gc.freeze()` moves it out of the
  collector's sight.
- Python's default first threshold (700 new containers) suits short scripts. Polling
  thousands of accounts allocates far more between two moments of rest, and each
  youngest-generation collection promotes what is merely in flight (requests, replies,
  parsed records) towards the old generations, which then fill and are walked in full
  again and again. At 600 accounts polled together, the default made 7 full
  collections a cycle (1.2-1.3 s of pauses, up to 394 ms each); 10,000 made 0-1.

The records kept per session or per request are untracked by the collector themselves
(msgspec Structs with `gc=False`), as they hold no reference back.
"""

from __future__ import annotations

import gc

# The youngest generation's threshold; the older ones keep Python's defaults (10, 10).
YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> int:
    """Collect once (so no garbage is frozen), freeze what is left, and raise the
    youngest generation's threshold; the number of objects frozen. Frozen objects are
    still freed when their last reference goes, but one caught in a reference cycle
    never is: call this once, after start-up, not on state that comes and goes."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()
