"""The one outcome vocabulary of every vendor's wait and duration histograms (label
`outcome`): how a customer's wait ended. Each vendor maps its own statuses onto it, in one
table beside its statuses; every outcome is zero-filled for every label set that exists."""

from __future__ import annotations

ANSWERED = "answered"  # a technician or agent took the customer
ABANDONED = "abandoned"  # the customer gave up while waiting
TIMED_OUT = "timed_out"  # the wait ended by a timeout
TRANSFERRED = "transferred"  # handed to another queue or technician while waiting
OTHER = "other"  # anything else, or unknown

OUTCOMES: tuple[str, ...] = (ANSWERED, ABANDONED, TIMED_OUT, TRANSFERRED, OTHER)
