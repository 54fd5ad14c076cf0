"""Benchmarks of the chat backend; `make bench` runs benchmarks/suite.py."""
