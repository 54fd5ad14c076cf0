"""The browser tests' screenshots show emoji as people see them: in colour (`make test` installs the font)."""

from __future__ import annotations

from playwright.sync_api import Browser

# Draws an emoji (a party popper: Debian's default font, DejaVu Sans, has no
# such glyph) on a canvas and counts the pixels that are clearly coloured
# (neither black, white nor grey): without a colour emoji font Chromium draws
# an empty box instead.
COLOURED_PIXELS = """() => {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 80;
  const context = canvas.getContext("2d");
  context.font = "64px sans-serif";
  context.textBaseline = "top";
  context.fillText("\\u{1F389}", 4, 4);
  const pixels = context.getImageData(0, 0, 80, 80).data;
  let coloured = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const [r, g, b, a] = pixels.slice(i, i + 4);
    if (a > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 80) coloured++;
  }
  return coloured;
}"""


def test_emoji_are_drawn_in_colour(browser: Browser):
    page = browser.new_page()
    try:
        page.set_content("<!doctype html><title>emoji</title>")
        assert page.evaluate(COLOURED_PIXELS) > 500, "no colour emoji font: make test installs fonts-noto-color-emoji"
    finally:
        page.close()
