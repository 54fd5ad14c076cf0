// The chat page. Every piece of user content is set with textContent: never as HTML.

import { addressedConversation, adoptAddress, backToList, isConversationId, onAddressChange, pushAddress } from "./address.js";
import { api, ApiError } from "./api.js";
import { describeError } from "./errors.js";
import { initNotifications, loadNotifications, onNotification, showUnreadTotal } from "./notifications.js";
import { SESSION_ENDED, SIGNED_OUT_ELSEWHERE, forgetSignedIn, rememberSignedIn, signOutWithReason, takeSignedOutReason } from "./session.js";
import { notePresence, onPresence, presenceDot, showPresence } from "./presence.js";
import { avatar } from "./avatars.js";
import { dayKey, dayLabel, listTime, longDayLabel, messageTime } from "./dates.js";
import { ChatSocket } from "./socket.js";
import {
  Holdings,
  STATUS_RANK,
  applyStatus,
  deliveredSeqOf,
  keepHigherWatermarks,
  myEntry,
  raiseMine,
  readersOf,
  statusOf,
} from "./watermarks.js";

const TYPING_SEND_EVERY_MS = 2000;
const TYPING_IDLE_MS = 3000;
const TYPING_SHOWN_MS = 6000;
const ACK_TIMEOUT_MS = 10000;
const HISTORY_PAGE = 50;
// A gap is filled from history a page of this size at a time (the API's maximum).
const GAP_FILL_PAGE = 200;
// Live messages of several senders can overtake one another: a missing one gets this long to arrive before
// the page fetches it.
const GAP_WAIT_MS = 300;
// Events of a conversation's sequence (contract 1.3) shown as a line of their own; edits and deletes change the
// message they refer to instead.
const SYSTEM_KINDS = new Set(["member_added", "member_removed", "member_left", "renamed", "role_changed"]);
const MEMBERSHIP_KINDS = new Set(["member_added", "member_removed", "member_left", "role_changed"]);
// Messages of one sender closer together than this (and on one day) form a run: one avatar and name for all.
const RUN_GAP_MS = 10 * 60 * 1000;
const TICKS = { SENDING: "Sending…", SENT: "✓ Sent", DELIVERED: "✓✓ Delivered", READ: "✓✓ Read", FAILED: "Not sent" };

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function isText(message) {
  return !message.kind || message.kind === "text";
}

// ### State ###

const state = {
  me: null,
  people: new Map(), // user id -> {id, username, displayName}
  conversations: new Map(), // id -> the contract's Conversation, plus `activity`
  nextCursor: null,
  openId: null,
  threads: new Map(), // conversation id -> {messages: Map seq -> message, oldestSeq, complete, loading, gap}
  seenIds: new Set(), // every message id shown: repeats are dropped by id
  held: new Holdings(), // conversation id -> every message up to this seq is here (or in history): confirmed
  pending: new Map(), // clientMessageId -> {conversationId, content, requestId, timer, failed}
  typing: new Map(), // conversation id -> Map user id -> expiry timer
  typingSentAt: 0,
  typingIdleTimer: null,
  readSent: new Map(), // conversation id -> the last upToSeq sent
  picked: new Map(),
  editing: null, // {conversationId, messageId} while the composer edits a message
  changes: new Map(), // requestId of a message.edit or message.delete -> what it was, for its error
  left: new Map(), // conversations the user left or was removed from (their last entry): history only
};

const socket = new ChatSocket({ onFrame, onOnline, onOffline });

function nameOf(userId) {
  const person = state.people.get(String(userId));
  if (!person) return `user ${userId}`;
  return person.displayName || person.username;
}

function remember(person) {
  state.people.set(String(person.id), { id: String(person.id), username: person.username, displayName: person.displayName || "" });
}

function others(conversation) {
  return conversation.participantIds.filter((id) => id !== state.me.id);
}

function titleOf(conversation) {
  if (conversation.kind === "group") return conversation.title || others(conversation).map(nameOf).join(", ") || "Group";
  const [other] = others(conversation);
  return other ? nameOf(other) : "Just you";
}

// The conversation's face: the other person's initials in a direct chat, the group's in a group.
function conversationAvatar(conversation, size) {
  if (conversation.kind === "group") return avatar(conversation.id, titleOf(conversation), size);
  const [other] = others(conversation);
  return avatar(other || state.me.id, titleOf(conversation), size);
}

function thread(conversationId) {
  let t = state.threads.get(conversationId);
  if (!t) {
    t = { messages: new Map(), oldestSeq: null, complete: false, loading: false, loaded: false, gap: null };
    state.threads.set(conversationId, t);
  }
  return t;
}

// ### Signing in and out ###

async function start() {
  adoptAddress();
  bindEvents();
  try {
    enter(await api("GET", "/api/users/me/"));
  } catch {
    showAuth();
  }
}

function showAuth() {
  $("app-view").hidden = true;
  $("auth-view").hidden = false;
  $("offline-banner").hidden = true;
  $("auth-notice").textContent = takeSignedOutReason();
  // Someone may already be typing while the session check ran: keep their focus.
  if (!$("auth-view").contains(document.activeElement)) $("auth-username").focus();
  document.body.dataset.view = "auth";
}

async function enter(me) {
  state.me = { ...me, id: String(me.id) };
  remember(state.me);
  rememberSignedIn();
  $("auth-view").hidden = true;
  $("app-view").hidden = false;
  document.body.dataset.view = "app";
  renderMe();
  await loadConversations(true);
  loadNotifications();
  socket.start();
  // A conversation's address (a reload, a shared link, the address before signing in) opens it.
  const addressed = addressedConversation();
  if (addressed !== null) openConversation(addressed, { fromAddress: true });
  else $("user-search").focus();
}

async function authenticate(register) {
  const username = $("auth-username").value.trim();
  const password = $("auth-password").value;
  $("auth-error").textContent = "";
  if (!username || !password) {
    $("auth-error").textContent = "Enter a username and a password.";
    return;
  }
  try {
    if (register) await api("POST", "/api/auth/register/", { username, password });
    const me = await api("POST", "/api/auth/session/", { username, password });
    $("auth-password").value = "";
    await enter(me);
  } catch (error) {
    $("auth-error").textContent = error instanceof ApiError ? error.message : "The server did not answer; try again.";
  }
}

async function logout() {
  // First: this tab's socket is told of the logout too, and this tab needs no reason.
  socket.stop();
  forgetSignedIn();
  try {
    await api("POST", "/api/auth/logout/");
  } catch {
    // Signed out already, or offline: the page forgets the user either way.
  }
  location.reload();
}

function renderMe() {
  $("me-name").textContent = nameOf(state.me.id);
  $("display-name-input").value = state.me.displayName || "";
}

async function saveProfile(event) {
  event.preventDefault();
  try {
    const me = await api("PATCH", "/api/users/me/", { displayName: $("display-name-input").value });
    state.me = { ...me, id: String(me.id) };
    remember(state.me);
    renderMe();
    $("profile-status").textContent = "Saved.";
    // Done: the panel closes, and says so to a screen reader from outside it.
    togglePanel("profile-button", "profile-panel");
    $("profile-button").focus();
    announce("Display name saved.");
  } catch (error) {
    $("profile-status").textContent = error.message;
  }
}

// ### Conversations ###

async function loadConversations(first) {
  const page = await api("GET", "/api/conversations/", undefined, { cursor: first ? "" : state.nextCursor });
  const known = new Map(state.conversations);
  if (first) state.conversations.clear();
  // The server's order is by last activity; a conversation without messages keeps its place in it.
  let floor = first ? Date.now() : Math.min(...[...state.conversations.values()].map((c) => c.activity), Date.now());
  for (const c of page.results) {
    addConversation(c, floor - 1, known.get(c.id));
    floor = Math.min(floor, state.conversations.get(c.id).activity);
  }
  state.nextCursor = page.next;
  $("more-conversations").hidden = !page.next;
  renderConversationList();
}

function addConversation(conversation, fallback, known = state.conversations.get(conversation.id)) {
  conversation.participants.forEach(remember);
  // The answer's unreadCount counts every message up to its lastSeq: those never count again when they arrive.
  conversation.countedSeq = conversation.lastSeq || 0;
  notePresence(conversation.participants);
  if (known && (known.lastSeq || 0) > (conversation.lastSeq || 0)) {
    // Messages arrived live after the server wrote this answer: keep what they brought.
    conversation.lastSeq = known.lastSeq;
    conversation.lastMessage = known.lastMessage;
    conversation.unreadCount = known.unreadCount;
    conversation.countedSeq = known.countedSeq || 0;
  }
  // Watermarks never move back: live frames may have moved them after the server wrote this answer.
  if (known) keepHigherWatermarks(conversation, known);
  const me = myEntry(conversation, state.me.id);
  if (me) state.held.raise(conversation.id, deliveredSeqOf(me));
  const activity = conversation.lastMessage ? Date.parse(conversation.lastMessage.createdAt) : 0;
  conversation.activity = known ? Math.max(known.activity, activity) : activity;
  if (fallback !== undefined && !conversation.activity) conversation.activity = fallback;
  state.conversations.set(conversation.id, conversation);
}

async function fetchConversation(conversationId) {
  const conversation = await api("GET", `/api/conversations/${conversationId}/`);
  addConversation(conversation);
  renderConversationList();
  return conversation;
}

function renderConversationList() {
  const list = $("conversation-list");
  const ordered = [...state.conversations.values()].sort((a, b) => b.activity - a.activity);
  list.replaceChildren(
    ...ordered.map((c) => {
      const unread = c.id === state.openId && paneVisible() ? 0 : c.unreadCount;
      const preview = c.lastMessage
        ? `${c.lastMessage.senderId === state.me.id ? "You" : nameOf(c.lastMessage.senderId)}: ${c.lastMessage.content}`
        : "No messages yet";
      const when = c.lastMessage ? listTime(c.lastMessage.createdAt) : "";
      const button = el(
        "button",
        { type: "button", "data-conversation-id": c.id, "aria-current": String(c.id === state.openId) },
        conversationAvatar(c),
        el("span", { class: "conversation-title", text: titleOf(c) }),
        when ? el("span", { class: "conversation-time", text: when }) : null,
        unread ? el("span", { class: "badge", text: String(unread), "aria-label": `${unread} unread` }) : null,
        el("span", { class: "conversation-preview", text: preview }),
      );
      if (c.kind === "direct" && others(c).length) button.querySelector(".conversation-title").prepend(presenceDot(others(c)[0]));
      button.addEventListener("click", () => openConversation(c.id));
      return el("li", {}, button);
    }),
  );
  showUnreadTotal(ordered.reduce((total, c) => total + (c.id === state.openId && paneVisible() ? 0 : c.unreadCount || 0), 0));
}

// ### Starting a conversation ###

let searchTimer = null;

function onSearchInput() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(search, 200);
}

// People whose name matches, remembered for display; null (with the reason shown in errorBox) on failure.
async function findPeople(text, errorBox) {
  try {
    const found = (await api("GET", "/api/users/", undefined, { search: text, limit: 20 })).results;
    found.forEach(remember);
    return found;
  } catch (error) {
    errorBox.textContent = error.message;
    return null;
  }
}

async function search() {
  const text = $("user-search").value.trim();
  const results = $("search-results");
  if (!text) {
    results.replaceChildren();
    return;
  }
  const found = await findPeople(text, $("new-conversation-error"));
  if (!found) return;
  results.replaceChildren(
    ...found
      .filter((u) => u.id !== state.me.id)
      .map((u) => {
        const label = u.displayName ? `${u.displayName} (${u.username})` : u.username;
        const button = el(
          "button",
          { type: "button", "aria-pressed": String(state.picked.has(u.id)) },
          avatar(u.id, u.displayName || u.username, "small"),
          el("span", { text: label }),
        );
        button.dataset.userId = u.id;
        button.addEventListener("click", () => {
          if (state.picked.has(u.id)) state.picked.delete(u.id);
          else state.picked.set(u.id, u);
          button.setAttribute("aria-pressed", String(state.picked.has(u.id)));
          renderPicked();
        });
        return el("li", {}, button);
      }),
  );
}

function renderPicked() {
  const names = [...state.picked.values()].map((u) => u.displayName || u.username);
  $("picked").textContent = names.length ? `With: ${names.join(", ")}` : "";
  $("start-button").disabled = names.length === 0;
  for (const node of document.querySelectorAll(".group-only")) node.hidden = names.length < 2;
}

async function startConversation(event) {
  event.preventDefault();
  const ids = [...state.picked.keys()];
  if (!ids.length) return;
  $("new-conversation-error").textContent = "";
  try {
    const body = { participantIds: ids };
    if (ids.length > 1) body.title = $("group-title").value.trim();
    const conversation = await api("POST", "/api/conversations/", body);
    conversation.activity = Date.now();
    addConversation(conversation);
    state.picked.clear();
    $("user-search").value = "";
    $("group-title").value = "";
    $("search-results").replaceChildren();
    renderPicked();
    renderConversationList();
    openConversation(conversation.id);
  } catch (error) {
    $("new-conversation-error").textContent = error.message;
  }
}

// ### The message pane ###

function paneVisible() {
  return document.visibilityState === "visible" && state.openId !== null;
}

// Open a conversation in the pane and show its address (unless the address is what asked for it).
async function openConversation(conversationId, { fromAddress = false } = {}) {
  if (!fromAddress) pushAddress(conversationId);
  document.querySelector(".app").classList.add("pane-open");
  if (!state.conversations.has(conversationId)) {
    // Not in the pages of the list loaded so far, someone else's, or no conversation at all.
    let problem = isConversationId(conversationId) ? null : NOT_FOUND;
    if (!problem) {
      try {
        await fetchConversation(conversationId);
      } catch (error) {
        problem = error instanceof ApiError ? NOT_FOUND : UNREACHABLE;
      }
    }
    if (addressedConversation() !== conversationId) return; // the address moved on meanwhile
    if (problem) {
      showNotFound(problem);
      return;
    }
  }
  state.openId = conversationId;
  $("pane").classList.remove("not-found");
  const conversation = state.conversations.get(conversationId);
  renderPaneHeader(conversation);
  $("composer").hidden = false;
  $("pane-note").hidden = true;
  $("pane-error").textContent = "";
  $("group-panel").hidden = true;
  $("group-button").setAttribute("aria-expanded", "false");
  if (state.editing) stopEditing();
  renderGroupPanel();
  $("messages").replaceChildren();
  renderTyping();
  renderConversationList();
  const t = thread(conversationId);
  if (!t.loaded) await loadNewest(conversationId);
  renderMessages();
  markRead();
  $("composer-input").focus();
}

// A notification's conversation: fetched first when the page does not hold it yet.
async function openFromNotification(conversationId) {
  try {
    if (!state.conversations.has(conversationId)) await fetchConversation(conversationId);
  } catch {
    return; // no longer the user's
  }
  openConversation(conversationId);
}

function renderPaneHeader(conversation) {
  $("pane-title").textContent = titleOf(conversation);
  $("pane-avatar").replaceChildren(conversationAvatar(conversation, "large"));
  showPresence(conversation.kind === "direct" ? others(conversation)[0] : null);
}

const NOT_FOUND = "There is no such conversation, or you are not in it. Pick one from your conversations, or start a new chat.";
const UNREACHABLE = "This conversation could not be loaded: the server did not answer. Reload the page to try again.";

// The pane of an address that names no conversation of the user's (or that could not be asked about): said
// plainly, with the list beside it.
function showNotFound(problem) {
  closePane({ focusList: false });
  document.querySelector(".app").classList.add("pane-open");
  $("pane").classList.add("not-found");
  $("pane-title").textContent = problem === NOT_FOUND ? "Conversation not found" : "Conversation not loaded";
  $("pane-note").textContent = problem;
  $("pane-note").hidden = false;
  $("back-button").focus();
}

function closePane({ focusList = true } = {}) {
  state.openId = null;
  document.querySelector(".app").classList.remove("pane-open");
  $("pane").classList.remove("not-found");
  $("pane-title").textContent = "Pick a conversation";
  $("pane-avatar").replaceChildren();
  showPresence(null);
  $("messages").replaceChildren();
  $("typing-indicator").textContent = "";
  $("pane-error").textContent = "";
  $("composer").hidden = true;
  $("group-panel").hidden = true;
  $("group-button").hidden = true;
  $("pane-note").hidden = true;
  if (state.editing) stopEditing();
  renderConversationList();
  if (!focusList) return;
  const first = document.querySelector("#conversation-list button");
  (first || $("user-search")).focus();
}

async function loadNewest(conversationId) {
  const t = thread(conversationId);
  // Without before_seq the API pages from the oldest message: ask for the newest page.
  const lastSeq = state.conversations.get(conversationId)?.lastSeq || 0;
  const page = await api("GET", `/api/conversations/${conversationId}/messages/`, undefined, {
    before_seq: lastSeq + 1,
    limit: HISTORY_PAGE,
  });
  t.loaded = true;
  const first = page.results[0];
  const below = first ? [...t.messages.keys()].filter((seq) => seq < first.seq) : [];
  if (below.length && !t.messages.has(first.seq - 1)) {
    // The pane shows one run without holes: what the thread had below the newest page (before an absence)
    // is left to scrolling up, which loads it again.
    for (const seq of below) t.messages.delete(seq);
    t.oldestSeq = Math.min(first.seq, ...t.messages.keys());
    t.complete = false;
  }
  page.results.forEach((m) => storeMessage(m));
  if (page.results.length < HISTORY_PAGE) t.complete = true;
  // The newest page up to lastSeq: everything before it is in history, so the page holds all of it.
  if (page.results.length) hold(conversationId, page.results[page.results.length - 1].seq, true);
}

async function loadOlder() {
  const conversationId = state.openId;
  const t = conversationId && thread(conversationId);
  if (!t || t.loading || t.complete || t.oldestSeq === null) return;
  t.loading = true;
  const list = $("messages");
  const fromBottom = list.scrollHeight - list.scrollTop;
  try {
    const page = await api("GET", `/api/conversations/${conversationId}/messages/`, undefined, {
      before_seq: t.oldestSeq,
      limit: HISTORY_PAGE,
    });
    page.results.forEach((m) => storeMessage(m));
    if (page.results.length < HISTORY_PAGE) t.complete = true;
  } finally {
    t.loading = false;
  }
  if (state.openId === conversationId) {
    renderMessages(false);
    list.scrollTop = list.scrollHeight - fromBottom;
  }
}

// Keep a stored message (from history, sync, live or an ack); return whether it is new.
function storeMessage(message) {
  const t = thread(message.conversationId);
  const known = t.messages.get(message.seq);
  if (known && known.id === message.id) {
    if (STATUS_RANK[message.status] > STATUS_RANK[known.status]) known.status = message.status;
    return false;
  }
  const stored = { ...message };
  // What history answers already shows every change up to what the page knew; a change after it still applies.
  stored.changedSeq = Math.max(message.seq, state.conversations.get(message.conversationId)?.lastSeq || 0);
  t.messages.set(message.seq, stored);
  state.seenIds.add(message.id);
  if (t.oldestSeq === null || message.seq < t.oldestSeq) t.oldestSeq = message.seq;
  if (message.seq === 1) t.complete = true;
  if (message.kind === "edit" || message.kind === "delete") applyChange(t, message);
  return true;
}

// An edit or delete event changes the message it refers to, when the page holds it and has not seen this change.
function applyChange(t, event) {
  const target = [...t.messages.values()].find((m) => m.id === event.refersTo);
  if (!target || target.changedSeq >= event.seq) return;
  target.changedSeq = event.seq;
  if (event.kind === "edit") {
    target.content = (event.meta && event.meta.content) || target.content;
    target.editedAt = event.createdAt;
  } else {
    target.content = "";
    target.deletedAt = event.createdAt;
  }
}

function renderMessages(scrollToEnd = true) {
  const conversationId = state.openId;
  if (!conversationId) return;
  const conversation = state.conversations.get(conversationId) || state.left.get(conversationId);
  if (!conversation) return;
  const t = thread(conversationId);
  const list = $("messages");
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  const stored = [...t.messages.values()].sort((a, b) => a.seq - b.seq);
  const mine = stored.filter((m) => m.senderId === state.me.id && isText(m));
  const lastSeen = conversation.kind === "group" ? [...mine].reverse().find((m) => readersOf(conversation, m, state.me.id).length) : null;
  const items = [];
  if (t.complete) items.push(el("li", { class: "history-note", text: "Start of the conversation" }));
  let day = null;
  let previous = null; // the text message shown last, while a run of one sender's messages goes on
  for (const message of stored) {
    if (!SYSTEM_KINDS.has(message.kind) && !isText(message)) continue; // edits and deletes show on their message
    if (dayKey(message.createdAt) !== day) {
      day = dayKey(message.createdAt);
      items.push(el("li", { class: "day-separator", text: dayLabel(message.createdAt), title: longDayLabel(message.createdAt) }));
      previous = null;
    }
    if (SYSTEM_KINDS.has(message.kind)) {
      items.push(el("li", { class: "system-line", text: message.content }));
      previous = null;
      continue;
    }
    const continues =
      previous !== null &&
      previous.senderId === message.senderId &&
      Date.parse(message.createdAt) - Date.parse(previous.createdAt) < RUN_GAP_MS;
    items.push(messageItem(conversation, message, message === lastSeen, !continues));
    previous = message;
  }
  const now = new Date().toISOString();
  for (const [clientMessageId, p] of state.pending) {
    if (p.conversationId !== conversationId) continue;
    if (day !== dayKey(now)) {
      // The first message of a new day is still on its way: it goes under today.
      day = dayKey(now);
      items.push(el("li", { class: "day-separator", text: dayLabel(now), title: longDayLabel(now) }));
    }
    items.push(pendingItem(clientMessageId, p));
  }
  list.replaceChildren(...items);
  if (scrollToEnd || atEnd) list.scrollTop = list.scrollHeight;
}

// One message; the first of a run of someone else's shows their avatar (and, in a group, their name).
function messageItem(conversation, message, showSeenBy, firstOfRun = true) {
  const mine = message.senderId === state.me.id;
  const item = el("li", { class: mine ? "message mine" : "message theirs" });
  item.dataset.messageId = message.id;
  item.dataset.seq = String(message.seq);
  if (!mine && firstOfRun) item.append(avatar(message.senderId, nameOf(message.senderId), "small"));
  if (!mine && conversation.kind === "group" && firstOfRun) item.append(el("div", { class: "message-sender", text: nameOf(message.senderId) }));
  else if (!mine) item.append(el("span", { class: "visually-hidden", text: `${nameOf(message.senderId)}: ` }));
  if (message.deletedAt) item.append(el("div", { class: "message-content deleted", text: "Message deleted" }));
  else item.append(el("div", { class: "message-content", text: message.content }));
  const meta = el("div", { class: "message-meta" }, el("time", { dateTime: message.createdAt, title: longDayLabel(message.createdAt), text: messageTime(message.createdAt) }));
  if (message.editedAt && !message.deletedAt) meta.append(" ", el("span", { class: "edited", text: "edited" }));
  if (mine) {
    const status = statusOf(message, conversation, state.me.id);
    meta.append(" ", el("span", { class: "tick", text: TICKS[status], "data-status": status }));
  }
  item.append(meta);
  const actions = messageActions(conversation, message, mine);
  if (actions) item.append(actions);
  if (showSeenBy) {
    const names = readersOf(conversation, message, state.me.id).map(nameOf);
    item.append(el("div", { class: "seen-by", text: `Seen by ${names.join(", ")}` }));
  }
  return item;
}

function amAdmin(conversation) {
  return conversation.kind === "group" && myEntry(conversation, state.me.id)?.role === "admin";
}

// Edit and delete for one's own messages; delete for a group admin on others'.
function messageActions(conversation, message, mine) {
  if (message.deletedAt || state.left.has(conversation.id)) return null;
  const short = message.content.length > 40 ? `${message.content.slice(0, 40)}…` : message.content;
  const buttons = [];
  if (mine) {
    const edit = el("button", { type: "button", text: "Edit", "aria-label": `Edit message: ${short}` });
    edit.addEventListener("click", () => startEditing(message));
    buttons.push(edit);
  }
  if (mine || amAdmin(conversation)) {
    const remove = el("button", { type: "button", text: "Delete", "aria-label": `Delete message: ${short}` });
    remove.addEventListener("click", () => deleteMessage(message));
    buttons.push(remove);
  }
  return buttons.length ? el("div", { class: "message-actions" }, ...buttons) : null;
}

function startEditing(message) {
  state.editing = { conversationId: message.conversationId, messageId: message.id };
  $("editing-bar").hidden = false;
  const input = $("composer-input");
  input.value = message.content;
  input.setAttribute("aria-describedby", "editing-label");
  input.focus();
}

function stopEditing() {
  state.editing = null;
  $("editing-bar").hidden = true;
  $("composer-input").value = "";
  $("composer-input").removeAttribute("aria-describedby");
}

function requestChange(frame, what) {
  const requestId = socket.nextRequestId(frame.type);
  state.changes.set(requestId, what);
  $("pane-error").textContent = "";
  if (!socket.send({ ...frame, requestId, clientMessageId: randomId() })) {
    state.changes.delete(requestId);
    $("pane-error").textContent = `Could not ${what}: you are offline.`;
  }
}

function deleteMessage(message) {
  if (!window.confirm("Delete this message for everyone?")) return;
  requestChange({ type: "message.delete", messageId: message.id }, "delete the message");
}

function pendingItem(clientMessageId, p) {
  const item = el("li", { class: p.failed ? "message mine failed" : "message mine" });
  item.dataset.clientMessageId = clientMessageId;
  item.append(el("div", { class: "message-content", text: p.content }));
  const status = p.failed ? "FAILED" : "SENDING";
  const meta = el("div", { class: "message-meta" }, el("span", { class: "tick", text: TICKS[status], "data-status": status }));
  if (p.failed) {
    meta.append(" ", el("span", { text: p.failed }));
    const retry = el("button", { type: "button", text: "Retry" });
    retry.addEventListener("click", () => {
      p.failed = null;
      transmit(clientMessageId);
      renderMessages();
    });
    meta.append(" ", retry);
  }
  item.append(meta);
  return item;
}

function markRead() {
  const conversationId = state.openId;
  if (!conversationId || document.visibilityState !== "visible") return;
  const conversation = state.conversations.get(conversationId);
  if (!conversation) return; // left: nothing to mark
  const t = thread(conversationId);
  const fromOthers = [...t.messages.values()].filter((m) => m.senderId !== state.me.id).map((m) => m.seq);
  if (!fromOthers.length) return;
  const upToSeq = Math.max(...fromOthers);
  if ((state.readSent.get(conversationId) || 0) >= upToSeq) return;
  if (socket.send({ type: "message.read", conversationId, upToSeq })) {
    state.readSent.set(conversationId, upToSeq);
    conversation.unreadCount = 0;
    renderConversationList();
  }
}

// ### Sending ###

function onComposerKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendFromComposer();
  }
}

function onComposerInput() {
  const conversationId = state.openId;
  if (!conversationId) return;
  const now = Date.now();
  if (now - state.typingSentAt > TYPING_SEND_EVERY_MS) {
    state.typingSentAt = now;
    socket.send({ type: "typing", conversationId, isTyping: true });
  }
  clearTimeout(state.typingIdleTimer);
  state.typingIdleTimer = setTimeout(() => stopTyping(conversationId), TYPING_IDLE_MS);
}

function stopTyping(conversationId) {
  clearTimeout(state.typingIdleTimer);
  if (!state.typingSentAt) return;
  state.typingSentAt = 0;
  socket.send({ type: "typing", conversationId, isTyping: false });
}

function sendFromComposer(event) {
  if (event) event.preventDefault();
  const input = $("composer-input");
  const content = input.value;
  if (!content.trim() || !state.openId) return;
  if (state.editing && state.editing.conversationId === state.openId) {
    requestChange({ type: "message.edit", messageId: state.editing.messageId, content }, "edit the message");
    stopEditing();
    return;
  }
  input.value = "";
  stopTyping(state.openId);
  const clientMessageId = randomId();
  state.pending.set(clientMessageId, { conversationId: state.openId, content, requestId: null, timer: null, failed: null });
  transmit(clientMessageId);
  renderMessages();
}

// Send (or send again, with the same clientMessageId: the server stores it once) a message not yet acknowledged.
function transmit(clientMessageId) {
  const p = state.pending.get(clientMessageId);
  if (!p || p.failed) return;
  clearTimeout(p.timer);
  p.requestId = socket.nextRequestId("send");
  socket.send({ type: "message.send", conversationId: p.conversationId, content: p.content, clientMessageId, requestId: p.requestId });
  // Unacknowledged in time (or sent while offline): try again; reconnecting also resends.
  p.timer = setTimeout(() => transmit(clientMessageId), ACK_TIMEOUT_MS);
}

function onAck(frame) {
  state.changes.delete(frame.requestId);
  const p = state.pending.get(frame.clientMessageId);
  if (p) {
    clearTimeout(p.timer);
    state.pending.delete(frame.clientMessageId);
  }
  arrived(frame.message, false);
}

function onError(frame) {
  if (frame.code === "logged_out" || frame.code === "token_expired") {
    // Signed out elsewhere (another tab of this browser): back to the sign-in form, which says so.
    socket.stop();
    signOutWithReason(frame.code === "logged_out" ? SIGNED_OUT_ELSEWHERE : SESSION_ENDED);
    return;
  }
  const change = state.changes.get(frame.requestId);
  if (change) {
    state.changes.delete(frame.requestId);
    $("pane-error").textContent = `Could not ${change}: ${describeError(frame)}`;
    return;
  }
  for (const [clientMessageId, p] of state.pending) {
    if (p.requestId !== frame.requestId) continue;
    clearTimeout(p.timer);
    if (frame.code === "rate_limited") {
      p.timer = setTimeout(() => transmit(clientMessageId), frame.retryAfterMs || 1000);
    } else if (frame.code === "server_error") {
      p.timer = setTimeout(() => transmit(clientMessageId), 2000);
    } else {
      p.failed = describeError(frame);
      if (p.conversationId === state.openId) renderMessages();
    }
  }
}

// ### Frames from the server ###

function onFrame(frame) {
  switch (frame.type) {
    case "message.new":
      onNewMessage(frame.message);
      break;
    case "message.ack":
      onAck(frame);
      break;
    case "message.status":
      onStatus(frame);
      break;
    case "typing":
      onTyping(frame);
      break;
    case "presence":
      onPresence(frame);
      break;
    case "notification":
      onNotification(frame.notification);
      break;
    case "sync.done":
      onSyncDone(frame);
      break;
    case "error":
      onError(frame);
      break;
    default:
      break;
  }
}

function onNewMessage(message) {
  if (state.seenIds.has(message.id)) {
    // A repeat: the server has no confirmation of it yet (one was lost with a connection, or a gap below it
    // is still open).
    hold(message.conversationId, message.seq);
    return;
  }
  arrived(message, message.senderId !== state.me.id);
}

async function arrived(message, fromOthers) {
  let conversation = state.conversations.get(message.conversationId);
  if (!conversation) {
    try {
      conversation = await fetchConversation(message.conversationId);
    } catch {
      const named = (message.meta && message.meta.userIds) || [];
      if ((message.kind === "member_removed" || message.kind === "member_left") && named.includes(state.me.id)) {
        // Left while away: that event ends the user's part of the conversation; confirm it, so it is not sent again.
        state.held.raise(message.conversationId, message.seq);
        socket.confirm(message.conversationId, message.seq);
      }
      return;
    }
    if (state.seenIds.has(message.id)) return;
  }
  record(conversation, message, fromOthers);
  hold(message.conversationId, message.seq);
  if (state.openId === message.conversationId) {
    renderMessages(!fromOthers);
    markRead();
  }
  renderConversationList();
}

// Keep a message that arrived (live, by sync, acknowledged, or missed and fetched) and what it changes in its
// conversation's entry; the caller renders.
function record(conversation, message, fromOthers) {
  const isNew = storeMessage(message);
  if (!conversation.lastMessage || message.seq >= conversation.lastMessage.seq) conversation.lastMessage = message;
  conversation.lastSeq = Math.max(conversation.lastSeq || 0, message.seq);
  conversation.activity = Math.max(conversation.activity, Date.parse(message.createdAt) || Date.now());
  if (isNew && !isText(message)) {
    applyEvent(conversation, message);
    if (SYSTEM_KINDS.has(message.kind) && fromOthers) announce(message.content);
    return;
  }
  if (fromOthers && isNew) {
    const open = state.openId === message.conversationId;
    // A missed message fetched from history may have been read already on another device.
    const readUpTo = Math.max(state.readSent.get(conversation.id) || 0, myEntry(conversation, state.me.id)?.lastReadSeq || 0);
    const counted = message.seq <= readUpTo || message.seq <= (conversation.countedSeq || 0);
    if (!(open && document.visibilityState === "visible") && !counted) conversation.unreadCount = (conversation.unreadCount || 0) + 1;
    announce(`New message from ${nameOf(message.senderId)}${conversation.kind === "group" ? ` in ${titleOf(conversation)}` : ""}: ${message.content}`);
  }
}

// A membership or title event changes the conversation's entry; one that names the user ends their membership.
function applyEvent(conversation, message) {
  if (message.kind === "renamed") {
    conversation.title = (message.meta && message.meta.title) || "";
    if (state.openId === conversation.id) renderPaneHeader(conversation);
  }
  if (!MEMBERSHIP_KINDS.has(message.kind)) return;
  const named = (message.meta && message.meta.userIds) || [];
  if ((message.kind === "member_removed" || message.kind === "member_left") && named.includes(state.me.id)) {
    leftConversation(conversation.id, message.kind === "member_left" ? "You left this group." : "You were removed from this group.");
    return;
  }
  // Members and roles: the conversation's answer has them all.
  fetchConversation(conversation.id).then(() => {
    if (state.openId === conversation.id) {
      renderGroupPanel();
      renderMessages(false);
    }
  }, () => {});
}

// The user is no longer a member: the conversation leaves the list; an open pane keeps its history, read only.
function leftConversation(conversationId, note) {
  const conversation = state.conversations.get(conversationId);
  if (conversation) state.left.set(conversationId, conversation);
  state.conversations.delete(conversationId);
  if (state.openId === conversationId) {
    $("composer").hidden = true;
    $("group-button").hidden = true;
    $("group-panel").hidden = true;
    $("pane-note").textContent = note;
    $("pane-note").hidden = false;
    if (state.editing) stopEditing();
  }
  announce(note);
  renderConversationList();
}

// ### Group info ###

function renderGroupPanel() {
  const conversation = state.conversations.get(state.openId);
  const isGroup = Boolean(conversation) && conversation.kind === "group";
  $("group-button").hidden = !isGroup;
  if (!isGroup) {
    $("group-panel").hidden = true;
    return;
  }
  const admin = amAdmin(conversation);
  for (const node of $("group-panel").querySelectorAll(".admin-only")) node.hidden = !admin;
  if (document.activeElement !== $("rename-input")) $("rename-input").value = conversation.title || "";
  const members = [...conversation.participants].sort((a, b) => nameOf(a.id).localeCompare(nameOf(b.id)));
  $("member-list").replaceChildren(
    ...members.map((p) => {
      const you = String(p.id) === state.me.id;
      const item = el("li", {}, el("span", { class: "member-name", text: you ? `${nameOf(p.id)} (you)` : nameOf(p.id) }));
      if (p.role === "admin") item.append(el("span", { class: "role", text: "admin" }));
      if (admin && !you) {
        const makeAdmin = p.role !== "admin";
        const role = el("button", { type: "button", text: makeAdmin ? "Make admin" : "Make member", "aria-label": `${makeAdmin ? "Make admin" : "Make member"}: ${nameOf(p.id)}` });
        role.addEventListener("click", () => changeGroup("POST", `participants/${p.id}/role/`, { role: makeAdmin ? "admin" : "member" }));
        const remove = el("button", { type: "button", text: "Remove", "aria-label": `Remove ${nameOf(p.id)} from the group` });
        remove.addEventListener("click", () => {
          if (window.confirm(`Remove ${nameOf(p.id)} from the group?`)) changeGroup("DELETE", `participants/${p.id}/`);
        });
        item.append(role, remove);
      }
      return item;
    }),
  );
}

function toggleGroupPanel() {
  const panel = $("group-panel");
  panel.hidden = !panel.hidden;
  $("group-button").setAttribute("aria-expanded", String(!panel.hidden));
  if (!panel.hidden) {
    renderGroupPanel();
    const first = panel.querySelector("button, input");
    if (first) first.focus();
  }
}

// Change the open group through REST; everyone (this page too) then gets the event live.
async function changeGroup(method, path, body) {
  const conversationId = state.openId;
  $("group-error").textContent = "";
  try {
    await api(method, `/api/conversations/${conversationId}/${path}`, body);
  } catch (error) {
    $("group-error").textContent = error.message;
    return false;
  }
  if (state.conversations.has(conversationId)) {
    await fetchConversation(conversationId).catch(() => {});
    if (state.openId === conversationId) renderGroupPanel();
  }
  return true;
}

async function renameGroup(event) {
  event.preventDefault();
  await changeGroup("PATCH", "", { title: $("rename-input").value.trim() });
}

async function leaveGroup() {
  if (!window.confirm("Leave this group? You keep what you have read so far.")) return;
  const conversationId = state.openId;
  if (await changeGroup("DELETE", `participants/${state.me.id}/`)) leftConversation(conversationId, "You left this group.");
}

let memberSearchTimer = null;

function onMemberSearchInput() {
  clearTimeout(memberSearchTimer);
  memberSearchTimer = setTimeout(searchMembers, 200);
}

async function searchMembers() {
  const text = $("member-search").value.trim();
  const results = $("member-search-results");
  const conversation = state.conversations.get(state.openId);
  if (!text || !conversation) {
    results.replaceChildren();
    return;
  }
  const found = await findPeople(text, $("group-error"));
  if (!found) return;
  results.replaceChildren(
    ...found
      .filter((u) => !conversation.participantIds.includes(String(u.id)))
      .map((u) => {
        const label = u.displayName ? `${u.displayName} (${u.username})` : u.username;
        const button = el("button", { type: "button", text: `Add ${label}` });
        button.dataset.userId = u.id;
        button.addEventListener("click", async () => {
          if (await changeGroup("POST", "participants/", { userIds: [u.id] })) {
            $("member-search").value = "";
            results.replaceChildren();
          }
        });
        return el("li", {}, button);
      }),
  );
}

function onStatus(frame) {
  const conversation = state.conversations.get(frame.conversationId);
  if (!conversation) return;
  let upToSeq = frame.upToSeq;
  if (typeof upToSeq !== "number" && frame.status === "READ") {
    // A frame from before watermarks: a READ one names the newest message read, which is a watermark too.
    const message = [...thread(frame.conversationId).messages.values()].find((m) => m.id === frame.messageId);
    upToSeq = message ? message.seq : 0;
  }
  if (applyStatus(conversation, frame, upToSeq, state.me.id) && state.openId === frame.conversationId) renderMessages(false);
}

// The end of a sync batch names every conversation whose last seq is past what the server knows this user holds.
function onSyncDone(frame) {
  for (const entry of frame.conversations || []) {
    const conversation = state.conversations.get(entry.conversationId);
    if (!conversation) {
      // New to the page: its answer brings the watermarks, then the tail is checked the same way.
      fetchConversation(entry.conversationId).then(() => onSyncDone({ ...frame, conversations: [entry] }), () => {});
      continue;
    }
    raiseMine(conversation, state.me.id, entry);
    state.held.raise(entry.conversationId, Math.max(entry.deliveredSeq || 0, entry.readSeq || 0));
    // While `more`, the next batch brings the rest; after the last one, a tail the page lacks comes from history.
    if (!frame.more && entry.lastSeq > state.held.get(entry.conversationId)) fillGap(entry.conversationId, entry.lastSeq);
    else confirmHeld(entry.conversationId);
  }
}

// ### What the page holds: its delivered watermark ###

// Take note that the thread now has the message `seq` and move the page's watermark over the contiguous run it
// holds (or up to `seq` itself when `wholeHistory`: the newest history page, below which history has everything).
// A message past a gap has the gap filled from history first; then the watermark is confirmed.
function hold(conversationId, seq, wholeHistory = false) {
  const t = thread(conversationId);
  if (wholeHistory) state.held.raise(conversationId, seq);
  state.held.extend(conversationId, (s) => t.messages.has(s));
  if (seq > state.held.get(conversationId)) fillGap(conversationId, seq);
  confirmHeld(conversationId);
}

function confirmHeld(conversationId) {
  const upToSeq = state.held.get(conversationId);
  const conversation = state.conversations.get(conversationId);
  const me = conversation && myEntry(conversation, state.me.id);
  // Nothing to say when the server already knows.
  if (me && upToSeq <= deliveredSeqOf(me)) return;
  if (upToSeq > 0) socket.confirm(conversationId, upToSeq);
}

// Fetch from history the messages between the page's watermark and `upToSeq` that have not arrived.
function fillGap(conversationId, upToSeq) {
  const t = thread(conversationId);
  if (!t.gap) t.gap = { upToSeq, timer: null, fetching: false };
  t.gap.upToSeq = Math.max(t.gap.upToSeq, upToSeq);
  if (t.gap.timer || t.gap.fetching) return;
  t.gap.timer = setTimeout(() => fetchGap(conversationId), GAP_WAIT_MS);
}

async function fetchGap(conversationId) {
  const t = thread(conversationId);
  const gap = t.gap;
  gap.timer = null;
  gap.fetching = true;
  try {
    while (state.held.get(conversationId) < gap.upToSeq) {
      const after = state.held.get(conversationId);
      const page = await api("GET", `/api/conversations/${conversationId}/messages/`, undefined, {
        after_seq: after,
        limit: GAP_FILL_PAGE,
      });
      // Looked up after the answer: a reloaded list replaces the conversation's entry.
      const conversation = state.conversations.get(conversationId);
      for (const message of page.results) {
        if (state.seenIds.has(message.id)) continue;
        if (conversation) record(conversation, message, message.senderId !== state.me.id);
        else storeMessage(message);
      }
      state.held.extend(conversationId, (s) => t.messages.has(s));
      if (state.held.get(conversationId) === after) break; // history has nothing more yet
    }
  } catch {
    // Offline or refused: the next sync or message tries again.
  } finally {
    t.gap = null;
  }
  confirmHeld(conversationId);
  if (state.openId === conversationId) {
    renderMessages(false);
    markRead();
  }
  renderConversationList();
}

function onTyping(frame) {
  if (String(frame.userId) === state.me.id) return; // never to the typist
  let typers = state.typing.get(frame.conversationId);
  if (!typers) {
    typers = new Map();
    state.typing.set(frame.conversationId, typers);
  }
  clearTimeout(typers.get(String(frame.userId)));
  if (frame.isTyping) {
    typers.set(
      String(frame.userId),
      setTimeout(() => {
        typers.delete(String(frame.userId));
        renderTyping();
      }, TYPING_SHOWN_MS),
    );
  } else {
    typers.delete(String(frame.userId));
  }
  renderTyping();
}

function renderTyping() {
  const typers = state.openId ? state.typing.get(state.openId) : null;
  const names = typers ? [...typers.keys()].map(nameOf) : [];
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length > 1) text = `${names.join(", ")} are typing…`;
  $("typing-indicator").textContent = text;
}

function announce(text) {
  const region = $("announcer");
  region.append(el("p", { text }));
  while (region.childElementCount > 5) region.firstElementChild.remove();
}

// ### Connection ###

async function onOnline() {
  $("offline-banner").hidden = true;
  // Messages sent while offline, or whose ack was lost with the connection.
  for (const clientMessageId of state.pending.keys()) transmit(clientMessageId);
  // What changed while away: new conversations, unread counts, read watermarks, ticks.
  try {
    await loadConversations(true);
    if (state.openId) {
      await loadNewest(state.openId);
      renderMessages(false);
      markRead();
    }
    loadNotifications();
    document.body.dataset.online = "true";
  } catch {
    // The server went away again; the next connect tries again.
  }
}

async function onOffline(attempt) {
  $("offline-banner").hidden = false;
  delete document.body.dataset.online;
  if (attempt >= 2) {
    // A refused handshake looks like a lost connection: check the session is still valid.
    try {
      await api("GET", "/api/users/me/");
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        socket.stop();
        signOutWithReason(SESSION_ENDED);
      }
    }
  }
}

// ### Panels ###

function togglePanel(buttonId, panelId) {
  const panel = $(panelId);
  panel.hidden = !panel.hidden;
  $(buttonId).setAttribute("aria-expanded", String(!panel.hidden));
  if (!panel.hidden) {
    const first = panel.querySelector("button, input");
    if (first) first.focus();
  }
}

// ### Wiring ###

function bindEvents() {
  $("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    authenticate(false);
  });
  $("register-button").addEventListener("click", () => authenticate(true));
  $("logout-button").addEventListener("click", logout);
  $("profile-button").addEventListener("click", () => togglePanel("profile-button", "profile-panel"));
  $("profile-form").addEventListener("submit", saveProfile);
  initNotifications({ open: openFromNotification });
  $("user-search").addEventListener("input", onSearchInput);
  $("new-conversation-form").addEventListener("submit", startConversation);
  $("more-conversations").addEventListener("click", () => loadConversations(false));
  $("back-button").addEventListener("click", () => {
    // Back to the list below in the browser's history (its Back button closes the pane then), or a new entry.
    if (!backToList()) closePane();
  });
  onAddressChange((conversationId) => {
    if (!state.me) return; // signed out: the form stays, and opens the address after signing in
    if (conversationId === null) closePane();
    else if (conversationId !== state.openId) openConversation(conversationId, { fromAddress: true });
  });
  $("group-button").addEventListener("click", toggleGroupPanel);
  $("rename-form").addEventListener("submit", renameGroup);
  $("leave-button").addEventListener("click", leaveGroup);
  $("member-search").addEventListener("input", onMemberSearchInput);
  $("editing-cancel").addEventListener("click", () => {
    stopEditing();
    $("composer-input").focus();
  });
  $("composer").addEventListener("submit", sendFromComposer);
  $("composer-input").addEventListener("keydown", onComposerKey);
  $("composer-input").addEventListener("input", onComposerInput);
  $("messages").addEventListener("scroll", () => {
    if ($("messages").scrollTop < 40) loadOlder();
  });
  document.addEventListener("visibilitychange", markRead);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.defaultPrevented) return; // the notifications overlay took it
    if (!$("profile-panel").hidden) togglePanel("profile-button", "profile-panel");
    if (!$("group-panel").hidden) toggleGroupPanel();
    if (state.editing) stopEditing();
  });
}

start();
