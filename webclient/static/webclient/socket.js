// The WebSocket side of the contract: connect, `sync` after every connect, confirm what the page holds,
// reconnect with backoff.

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;
const PING_EVERY_MS = 25000;
// Confirmations are watermarks: the latest one per conversation says it all, so one frame per conversation
// in this time is plenty.
const RECEIVED_EVERY_MS = 100;

export class ChatSocket {
  constructor({ onFrame, onOnline, onOffline }) {
    this.onFrame = onFrame;
    this.onOnline = onOnline;
    this.onOffline = onOffline;
    this.ws = null;
    this.attempt = 0;
    this.stopped = true;
    this.retryTimer = null;
    this.pingTimer = null;
    this.received = new Map(); // conversation id -> upToSeq not sent yet
    this.receivedSent = new Map(); // conversation id -> {upToSeq, at}: the last one sent on this connection
    this.receivedTimer = null;
    this.syncTimer = null;
    this.requestCounter = 0;
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.receivedTimer);
    clearTimeout(this.syncTimer);
    this.received.clear();
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  nextRequestId(prefix) {
    this.requestCounter += 1;
    return `${prefix}-${this.requestCounter}`;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/chat/`);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      // A new connection: confirm what the page held while offline first, so that sync does not send it again.
      this.receivedSent.clear();
      this.flushReceived();
      this.sync();
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send({ type: "ping" }), PING_EVERY_MS);
      this.onOnline();
    };
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(frame);
      // Sync sends again what is unconfirmed: confirm this batch before asking for the next.
      if (frame.type === "sync.done" && frame.more) this.syncWhenConfirmed();
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      clearTimeout(this.syncTimer);
      if (this.stopped) return;
      this.onOffline(this.attempt);
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
      this.attempt += 1;
      this.retryTimer = setTimeout(() => this.connect(), delay * (0.5 + Math.random() / 2));
    };
  }

  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  sync() {
    this.send({ type: "sync", requestId: this.nextRequestId("sync") });
  }

  // Confirm that the page holds every message of the conversation up to `upToSeq` (batched per conversation).
  confirm(conversationId, upToSeq) {
    const sent = this.receivedSent.get(conversationId);
    if (sent && sent.upToSeq >= upToSeq) return;
    if ((this.received.get(conversationId) || 0) >= upToSeq) return;
    this.received.set(conversationId, upToSeq);
    if (!this.receivedTimer) this.receivedTimer = setTimeout(() => this.flushReceived(), RECEIVED_EVERY_MS);
  }

  // How long until every waiting confirmation may go: one frame per conversation per RECEIVED_EVERY_MS.
  untilDue() {
    const now = performance.now();
    let wait = 0;
    for (const conversationId of this.received.keys()) {
      const sent = this.receivedSent.get(conversationId);
      if (sent) wait = Math.max(wait, sent.at + RECEIVED_EVERY_MS - now);
    }
    return wait;
  }

  // Send the waiting confirmations that are due (all of them when `all`); the rest wait for their turn.
  flushReceived(all = false) {
    clearTimeout(this.receivedTimer);
    this.receivedTimer = null;
    const now = performance.now();
    for (const [conversationId, upToSeq] of this.received) {
      const sent = this.receivedSent.get(conversationId);
      if (!all && sent && now - sent.at < RECEIVED_EVERY_MS) continue;
      // Offline: they wait for the next connection, which sends them before its sync.
      if (!this.send({ type: "message.received", conversationId, upToSeq })) return;
      this.receivedSent.set(conversationId, { upToSeq, at: now });
      this.received.delete(conversationId);
    }
    if (this.received.size) this.receivedTimer = setTimeout(() => this.flushReceived(), this.untilDue());
  }

  // Ask for the next sync batch once the confirmations of this one are out, keeping to their pace.
  syncWhenConfirmed() {
    clearTimeout(this.syncTimer);
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      this.flushReceived(true);
      this.sync();
    }, this.untilDue());
  }
}
