// What tells the user something new: the bell and its panel of unread notifications, and the tab's title.
//
// The panel lists unread notifications only. One clears when it is read: marked read here, or by the server
// once its conversation is read past the message it announces, in this tab or another (every tab gets the
// new version, `read: true`, as a `notification` frame). A NEW_MESSAGE notification opens its conversation.

import { api } from "./api.js";

const PAGE_SIZE = 20;
const TITLE = document.title || "Chat";

const $ = (id) => document.getElementById(id);

const state = {
  unread: new Map(), // id -> the newest version of each unread notification the page holds
  versions: new Map(), // id -> updatedAt of the newest version seen (read ones too): older ones change nothing
  beyond: 0, // unread notifications past the page the page loaded
  open: null, // (conversationId) => opens a conversation
};

function newer(notification) {
  const known = state.versions.get(notification.id);
  const version = notification.updatedAt || notification.createdAt || "";
  if (known !== undefined && version <= known) return false;
  state.versions.set(notification.id, version);
  return true;
}

function unreadTotal() {
  return state.unread.size + state.beyond;
}

// The bell, the panel's list and the button to mark all read, from `state`.
function render() {
  const count = unreadTotal();
  const badge = $("bell-count");
  badge.hidden = count === 0;
  badge.textContent = String(count);
  $("bell-button").setAttribute("aria-label", count ? `Notifications, ${count} unread` : "Notifications");
  const ordered = [...state.unread.values()].sort((a, b) =>
    (b.updatedAt || b.createdAt).localeCompare(a.updatedAt || a.createdAt),
  );
  $("notifications-empty").hidden = count > 0;
  $("notifications-read-all").hidden = count === 0;
  $("notification-list").replaceChildren(...ordered.map(item));
}

function item(notification) {
  const li = document.createElement("li");
  li.className = "notification";
  li.dataset.notificationId = notification.id;
  li.dataset.type = notification.type;
  const opens = Boolean(notification.conversationId && state.open);
  const main = document.createElement("button");
  main.type = "button";
  main.className = "notification-open";
  const title = document.createElement("span");
  title.className = "notification-title";
  title.textContent = notification.title;
  main.append(title);
  if (notification.content) {
    const content = document.createElement("span");
    content.className = "notification-content";
    content.textContent = notification.content;
    main.append(content);
  }
  main.setAttribute("aria-label", `${opens ? "Open" : "Dismiss"}: ${notification.title}`);
  main.addEventListener("click", () => (opens ? openFrom(notification) : markRead(notification.id)));
  li.append(main);
  if (opens) {
    // Opening reads it; this clears it without opening.
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "notification-dismiss";
    dismiss.textContent = "Mark read";
    dismiss.setAttribute("aria-label", `Mark read: ${notification.title}`);
    dismiss.addEventListener("click", () => markRead(notification.id));
    li.append(dismiss);
  }
  return li;
}

function announce(text) {
  const region = $("announcer");
  if (!region) return;
  const line = document.createElement("p");
  line.textContent = text;
  region.append(line);
  while (region.childElementCount > 5) region.firstElementChild.remove();
}

// ### What the server says ###

export async function loadNotifications() {
  try {
    const page = await api("GET", "/api/notifications/", undefined, { unread: "true", page_size: PAGE_SIZE });
    state.unread.clear();
    for (const n of page.results) {
      state.versions.set(n.id, n.updatedAt || n.createdAt || "");
      state.unread.set(n.id, n);
    }
    state.beyond = Math.max(0, page.count - state.unread.size);
    render();
  } catch {
    // Shown again on the next connect.
  }
}

// A `notification` frame: new, a newer version (a coalesced "3 new messages"), or read (here or elsewhere).
export function onNotification(notification) {
  const seen = state.versions.has(notification.id);
  if (!newer(notification)) return;
  const held = state.unread.has(notification.id);
  if (notification.read) {
    if (held) state.unread.delete(notification.id);
    else if (!seen && state.beyond > 0) state.beyond -= 1; // one of those past the loaded page
  } else {
    state.unread.set(notification.id, notification);
    if (!held) announce(`New notification: ${notification.title}`);
  }
  render();
}

async function markRead(id) {
  const wasFocused = $("notifications-panel").contains(document.activeElement);
  try {
    await api("POST", `/api/notifications/${id}/read/`);
  } catch {
    return;
  }
  // The server's frame says the same; this spares the wait.
  state.unread.delete(id);
  render();
  if (wasFocused) focusInPanel();
}

async function markAllRead() {
  try {
    await api("POST", "/api/notifications/read-all/");
  } catch {
    return;
  }
  state.unread.clear();
  state.beyond = 0;
  render();
  focusInPanel();
}

function openFrom(notification) {
  close(false);
  state.open(notification.conversationId);
}

// ### The panel: an overlay under the bell ###

function isOpen() {
  return !$("notifications-panel").hidden;
}

function place() {
  // Fixed under the top bar, whatever its height (it wraps on narrow screens).
  const bar = $("bell-button").closest("header") || $("bell-button");
  $("notifications-panel").style.top = `${Math.round(bar.getBoundingClientRect().bottom) + 4}px`;
}

function focusInPanel() {
  const panel = $("notifications-panel");
  const first = panel.querySelector("#notification-list button") || panel.querySelector("button:not([hidden])");
  (first || panel).focus();
}

function show() {
  place();
  $("notifications-panel").hidden = false;
  $("bell-button").setAttribute("aria-expanded", "true");
  focusInPanel();
}

function close(returnFocus = true) {
  $("notifications-panel").hidden = true;
  $("bell-button").setAttribute("aria-expanded", "false");
  if (returnFocus) $("bell-button").focus();
}

// Wire the bell and its panel; `open(conversationId)` opens a conversation (fetching it if the page lacks it).
export function initNotifications({ open }) {
  state.open = open;
  $("bell-button").addEventListener("click", () => (isOpen() ? close() : show()));
  $("notifications-read-all").addEventListener("click", markAllRead);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && isOpen()) {
      event.preventDefault();
      close();
    }
  });
  // A click anywhere else closes the overlay, as menus do.
  document.addEventListener("click", (event) => {
    if (!isOpen()) return;
    if ($("notifications-panel").contains(event.target) || $("bell-button").contains(event.target)) return;
    close(false);
  });
  window.addEventListener("resize", () => {
    if (isOpen()) place();
  });
}

// The tab's title carries the unread total, e.g. "(3) Chat", so a tab in the background shows it.
export function showUnreadTotal(count) {
  const title = count > 0 ? `(${count}) ${TITLE}` : TITLE;
  if (document.title !== title) document.title = title;
}
