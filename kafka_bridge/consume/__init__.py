"""Consuming: what a record is, the registry of topics and loops, each loop's driver and steps, the bridge process.

Dependencies point down: bridge -> driver -> steps -> records. The registry
and records import nothing of the driver.
"""
