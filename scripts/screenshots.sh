#!/usr/bin/env bash
# `make screenshots`: the README's pictures of the web client (docs/web-client.png and
# docs/web-client-phone.png), made again by Debian's Chromium from a real system on the
# test services (tests/browser/screenshots.py builds the scene; its times are fixed, so
# every run draws the same pictures). SCREENSHOTS_DIR=... writes them elsewhere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Emoji in colour, as people's browsers draw them (Chromium draws an empty box without the font).
if [[ ! -x /usr/bin/chromium ]]; then
  (SERVICE=chromium && source scripts/lib.sh && apt_install chromium)
fi
if [[ $(dpkg-query -W -f='${db:Status-Status}' fonts-noto-color-emoji 2>/dev/null) != installed ]]; then
  (SERVICE=fonts && source scripts/lib.sh && apt_install fonts-noto-color-emoji)
fi
source scripts/test-services.sh

.venv/bin/pytest tests/browser/screenshots.py tests/browser/test_fonts.py -q -p no:cacheprovider
