#!/usr/bin/env bash
# The benchmarks, against the same real services as the tests. Each prints its figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/test-services.sh

for bench in benchmarks/*.py; do
  echo "== $bench"
  .venv/bin/python "$bench"
done
