// Who is online among the people of the user's direct conversations (contract 1.3, presence): a dot beside each
// direct conversation in the list and in the open conversation's header, which also says "online" or
// "last seen 5 minutes ago". In words as well as colour: the dot is filled when online and a ring when not, and
// has a name that screen readers say.
//
// The state comes from REST answers (participants carry `online` and `lastSeenAt`) and then from `presence`
// frames, which the server sends only about direct partners, at most one per person per few seconds.

// The header's "last seen" is worded again this often, so that "just now" becomes "2 minutes ago".
const REWORD_EVERY_MS = 30000;
const MINUTE = 60;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const people = new Map(); // user id -> {online, lastSeenAt}
let headerUserId = null; // whose state the open conversation's header shows
let rewordTimer = null;

// Take the state of people from a REST answer: users or participants, each with `id, online, lastSeenAt`.
export function notePresence(users) {
  for (const user of users) {
    if (typeof user.online === "boolean") set(String(user.id), user.online, user.lastSeenAt);
  }
}

// A `presence` frame: someone the user shares a direct conversation with came online or went offline.
export function onPresence(frame) {
  set(String(frame.userId), Boolean(frame.online), frame.lastSeenAt);
}

function set(userId, online, lastSeenAt) {
  const known = people.get(userId);
  const lastSeen = online ? null : lastSeenAt || (known && known.lastSeenAt) || null;
  if (known && known.online === online && known.lastSeenAt === lastSeen) return;
  people.set(userId, { online, lastSeenAt: lastSeen });
  for (const dot of document.querySelectorAll(`.presence-dot[data-user-id="${CSS.escape(userId)}"]`)) paint(dot, userId);
  if (headerUserId === userId) renderHeader();
}

// A dot for one person, kept up to date as their state changes.
export function presenceDot(userId) {
  const dot = document.createElement("span");
  dot.className = "presence-dot";
  dot.dataset.userId = String(userId);
  dot.setAttribute("role", "img");
  paint(dot, String(userId));
  return dot;
}

function paint(dot, userId) {
  const online = Boolean(people.get(userId)?.online);
  dot.dataset.online = String(online);
  dot.setAttribute("aria-label", online ? "online" : "offline");
  dot.title = online ? "Online" : "Offline";
}

// Show in the open conversation's header the state of this person (a direct conversation's other member), or
// nothing (a group, or no conversation open).
export function showPresence(userId) {
  headerUserId = userId === null || userId === undefined ? null : String(userId);
  renderHeader();
}

function header() {
  let node = document.getElementById("pane-presence");
  if (!node) {
    node = document.createElement("span");
    node.id = "pane-presence";
    node.className = "pane-presence";
    document.getElementById("pane-title").after(node);
  }
  return node;
}

function renderHeader() {
  const node = header();
  clearTimeout(rewordTimer);
  if (headerUserId === null) {
    node.hidden = true;
    node.replaceChildren();
    return;
  }
  const state = people.get(headerUserId);
  const text = document.createElement("span");
  text.className = "presence-text";
  text.textContent = state?.online ? "online" : lastSeenText(state?.lastSeenAt);
  const dot = presenceDot(headerUserId);
  dot.setAttribute("aria-hidden", "true"); // the text beside it says the same
  node.replaceChildren(dot, text);
  node.hidden = false;
  if (state && !state.online && state.lastSeenAt) rewordTimer = setTimeout(renderHeader, REWORD_EVERY_MS);
}

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

// "last seen just now", "last seen 5 minutes ago", "last seen yesterday", "last seen on 3 March"; "offline" when
// never seen.
export function lastSeenText(iso, now = Date.now()) {
  const then = iso ? Date.parse(iso) : Number.NaN;
  if (Number.isNaN(then)) return "offline";
  const seconds = Math.max(0, (now - then) / 1000);
  if (seconds < MINUTE) return "last seen just now";
  if (seconds < HOUR) return `last seen ${relative.format(-Math.floor(seconds / MINUTE), "minute")}`;
  if (seconds < DAY) return `last seen ${relative.format(-Math.floor(seconds / HOUR), "hour")}`;
  if (seconds < 7 * DAY) return `last seen ${relative.format(-Math.floor(seconds / DAY), "day")}`;
  const date = new Date(then);
  const sameYear = date.getFullYear() === new Date(now).getFullYear();
  return `last seen on ${date.toLocaleDateString("en", sameYear ? { day: "numeric", month: "long" } : { dateStyle: "medium" })}`;
}
