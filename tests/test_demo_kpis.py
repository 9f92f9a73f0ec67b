"""The demo shows service level, abandonment and speed of answer within two minutes (issue
14): answered and abandoned waits of Glance and Rescue, and SecureVideo's answered ones."""

from __future__ import annotations

import pytest

from .support import demo, get, samples, wait_for

# (wait histogram, outcome or "" for a histogram without one) that must be non-zero.
NEEDED = {
    ("glance_session_wait_seconds_count", "answered"),
    ("glance_session_wait_seconds_count", "abandoned"),
    ("rescue_session_wait_seconds_count", "answered"),
    ("rescue_session_wait_seconds_count", "abandoned"),
    ("securevideo_session_wait_seconds_count", ""),
}


@pytest.mark.slow
def test_demo_shows_answered_and_abandoned_waits_within_two_minutes() -> None:
    missing = set(NEEDED)
    with demo() as (_proc, url):

        def all_seen() -> bool:
            for (name, labels), value in samples(get(url + "/metrics")[1] or b"").items():
                outcome = dict(labels).get("outcome", "")
                if value > 0:
                    missing.discard((name, outcome))
            return not missing

        assert wait_for(all_seen, 120), f"still zero after 120 s: {sorted(missing)}"
