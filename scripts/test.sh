#!/usr/bin/env bash
# The whole test suite, against real PostgreSQL, Redis and Kafka that this
# script starts and stops again (`make test` runs `make lint` first). Extra
# arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# tests/deploy validates docker-compose.yml with Debian's docker-compose (no Docker engine needed).
if ! command -v docker-compose >/dev/null; then
  (SERVICE=docker-compose && source scripts/lib.sh && apt_install docker-compose)
fi
# tests/deploy check the alert rules with Debian's promtool, and an integration test runs its
# Prometheus; apt_install's policy-rc.d keeps the package from starting its own service on 9090.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  (SERVICE=prometheus && source scripts/lib.sh && apt_install prometheus)
fi
# tests/browser drive Debian's Chromium: Playwright's own browser download is not used.
if [[ ! -x /usr/bin/chromium ]]; then
  (SERVICE=chromium && source scripts/lib.sh && apt_install chromium)
fi
# Their screenshots show emoji in colour, as people's browsers do (Chromium draws an empty box without the font).
if [[ $(dpkg-query -W -f='${db:Status-Status}' fonts-noto-color-emoji 2>/dev/null) != installed ]]; then
  (SERVICE=fonts && source scripts/lib.sh && apt_install fonts-noto-color-emoji)
fi
source scripts/test-services.sh

.venv/bin/python manage.py makemigrations --check --dry-run >/dev/null
.venv/bin/pytest "$@"
