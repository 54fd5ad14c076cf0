#!/usr/bin/env bash
# `make bench`: the full path against the baselines, with production settings, on the
# same real services as the tests (benchmarks/suite.py: a table, results.json, a plot),
# then the scale-out beside the single node and what each role costs
# (benchmarks/scaleout.py: a table, scaleout.json). ONLY=main or ONLY=scaleout runs one.
# The other scripts in benchmarks/ run on their own the same way, e.g.
#   source scripts/test-services.sh; .venv/bin/python benchmarks/e2e_latency.py
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ONLY=${ONLY:-}
case $ONLY in
  "" | main | scaleout) ;;
  *) echo "ONLY=$ONLY: choose main (the suite) or scaleout (the scale-out run), or leave it unset for both" >&2; exit 2 ;;
esac
source scripts/test-services.sh

if [[ $ONLY != scaleout ]]; then .venv/bin/python benchmarks/suite.py; fi
if [[ $ONLY != main ]]; then .venv/bin/python benchmarks/scaleout.py; fi
