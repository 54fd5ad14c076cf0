#!/usr/bin/env bash
# `make bench`: the full path against the baselines, with production settings, on the
# same real services as the tests (benchmarks/suite.py: a table, results.json, a plot).
# The other scripts in benchmarks/ run on their own the same way, e.g.
#   source scripts/test-services.sh; .venv/bin/python benchmarks/e2e_latency.py
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/test-services.sh

.venv/bin/python benchmarks/suite.py
