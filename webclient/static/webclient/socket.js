// The WebSocket side of the contract: connect, `sync` after every connect,
// confirm what arrived, reconnect with backoff.

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;
const PING_EVERY_MS = 25000;
const RECEIVED_FLUSH_MS = 100;
const RECEIVED_MAX_IDS = 500;

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
    this.received = [];
    this.receivedTimer = null;
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
    this.received = [];
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
      if (frame.type === "sync.done") {
        // Confirm this batch before asking for the next: sync resends what is unconfirmed.
        this.flushReceived();
        if (frame.more) this.sync();
      }
      this.onFrame(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
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

  // Confirm receipt of a message (batched; sent at once before the next sync).
  confirm(messageId) {
    this.received.push(messageId);
    if (this.received.length >= RECEIVED_MAX_IDS) this.flushReceived();
    else if (!this.receivedTimer) this.receivedTimer = setTimeout(() => this.flushReceived(), RECEIVED_FLUSH_MS);
  }

  flushReceived() {
    clearTimeout(this.receivedTimer);
    this.receivedTimer = null;
    if (!this.received.length) return;
    // Unsent confirmations are dropped: the next sync brings those messages again.
    if (this.send({ type: "message.received", messageIds: this.received })) this.received = [];
  }
}
