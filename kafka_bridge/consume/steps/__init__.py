"""The steps of a loop, behind its driver (driver.py), in the order a polled batch meets them.

group.py splits the batch by partition and key; handle.py decodes each record
(decode.py) and runs the batch handler on a key's records together, or each
record's handler with retries (retry.py) and, when that cannot succeed, the
dead-letter topic (dead_letter.py); commit.py commits what was finished.
Each step is a small class with `submit` (and `join` where it keeps
state); none of them polls, and none reads a clock it was not given.
"""
