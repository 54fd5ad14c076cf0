// Initials avatars: a name's initials on a colour picked from the user's (or group's) id, so a person keeps
// their colour wherever they appear and whatever they call themselves. Decorative (aria-hidden): the name is
// always in text beside it.

// The number of colours in avatars.css (each with white text at a contrast of 4.5:1 or more).
const COLOURS = 12;
const WORD_BREAKS = /[\s\-_.@+]+/u;
const LETTER = /^\p{L}/u;

const graphemes = typeof Intl.Segmenter === "function" ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;

function firstCharacter(word) {
  if (graphemes) {
    for (const { segment } of graphemes.segment(word)) return segment;
    return "";
  }
  return Array.from(word)[0] || "";
}

// "Ann Baker" -> "AB", "ann-xnu9" -> "AX", "ben-707c" -> "B", "cat" -> "C": the first character of the first and
// the last word, leaving out words that start with a digit or a sign when a word starts with a letter.
export function initialsOf(name) {
  const all = String(name || "").split(WORD_BREAKS).filter(Boolean);
  const lettered = all.filter((word) => LETTER.test(word));
  const words = lettered.length ? lettered : all;
  if (!words.length) return "?";
  const first = firstCharacter(words[0]);
  const last = words.length > 1 ? firstCharacter(words[words.length - 1]) : "";
  return (first + last).toLocaleUpperCase();
}

// A number in [0, COLOURS) from an id: the same id always gives the same colour (FNV-1a).
export function colourOf(id) {
  let hash = 0x811c9dc5;
  for (const ch of String(id)) {
    hash ^= ch.codePointAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % COLOURS;
}

// A decorative avatar element for `name` coloured by `id`; `size` is "small" or "large" (default: medium).
export function avatar(id, name, size = "") {
  const node = document.createElement("span");
  node.className = size ? `avatar avatar-${size}` : "avatar";
  node.setAttribute("aria-hidden", "true");
  node.dataset.colour = String(colourOf(id));
  node.textContent = initialsOf(name);
  return node;
}
