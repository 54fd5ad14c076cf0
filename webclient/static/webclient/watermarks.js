// Delivery and read state by watermark (contract 1.2). Each participant of a conversation has two "up to" seqs
// that never move back: `deliveredSeq` (their client holds every message up to it) and `lastReadSeq` (they have
// read everything up to it that others sent; READ implies DELIVERED). A message's ticks follow from the other
// participants' watermarks; nothing is kept per message and reader.

export const STATUS_RANK = { SENDING: 0, SENT: 1, DELIVERED: 2, READ: 3 };

// Move a participant's watermark up to `seq`; return whether it moved.
function raise(participant, key, seq) {
  if (!(seq > (participant[key] || 0))) return false;
  participant[key] = seq;
  return true;
}

function othersIn(conversation, meId) {
  return conversation.participants.filter((p) => String(p.id) !== meId);
}

function participantOf(conversation, userId) {
  return conversation.participants.find((p) => String(p.id) === String(userId));
}

// What a participant's client holds: reading a message implies having it.
export function deliveredSeqOf(participant) {
  return Math.max(participant.deliveredSeq || 0, participant.lastReadSeq || 0);
}

// The page's own participant entry: the server's view of what this user's clients hold and have read.
export function myEntry(conversation, meId) {
  return participantOf(conversation, meId);
}

// Keep what a newer answer about a conversation may not know yet: watermarks that live frames moved meanwhile.
export function keepHigherWatermarks(fresh, known) {
  for (const participant of fresh.participants) {
    const before = participantOf(known, participant.id);
    if (!before) continue;
    raise(participant, "deliveredSeq", before.deliveredSeq);
    raise(participant, "lastReadSeq", before.lastReadSeq);
  }
}

// Raise this user's own watermarks from what the server says (sync.done); return whether one moved.
export function raiseMine(conversation, meId, { deliveredSeq, readSeq }) {
  const me = participantOf(conversation, meId);
  if (!me) return false;
  const read = raise(me, "lastReadSeq", readSeq);
  return raise(me, "deliveredSeq", deliveredSeq) || read;
}

// Apply a `message.status` frame whose watermark is `upToSeq`: with a userId, that participant's; with
// `userId: null, aggregate: true`, every other participant's at least. Return whether anything moved.
export function applyStatus(conversation, frame, upToSeq, meId) {
  const keys = { DELIVERED: ["deliveredSeq"], READ: ["lastReadSeq", "deliveredSeq"] }[frame.status];
  if (!keys || !(upToSeq > 0)) return false;
  let targets;
  if (frame.userId === null || frame.userId === undefined) targets = frame.aggregate ? othersIn(conversation, meId) : [];
  else targets = [participantOf(conversation, frame.userId)].filter(Boolean);
  let moved = false;
  for (const participant of targets) {
    for (const key of keys) moved = raise(participant, key, upToSeq) || moved;
  }
  return moved;
}

// The sender's view of a message of theirs: READ when every other participant has read it, DELIVERED when every
// other participant holds it, SENT otherwise; the server's `status` is a floor (it may know more than the frames).
export function statusOf(message, conversation, meId) {
  const floor = message.status in STATUS_RANK ? message.status : "SENT";
  const recipients = othersIn(conversation, meId);
  if (!recipients.length) return floor;
  let status = "SENT";
  if (recipients.every((p) => (p.lastReadSeq || 0) >= message.seq)) status = "READ";
  else if (recipients.every((p) => deliveredSeqOf(p) >= message.seq)) status = "DELIVERED";
  return STATUS_RANK[status] > STATUS_RANK[floor] ? status : floor;
}

// The other participants who have read a message: "Seen by".
export function readersOf(conversation, message, meId) {
  return othersIn(conversation, meId)
    .filter((p) => (p.lastReadSeq || 0) >= message.seq)
    .map((p) => String(p.id));
}

// The page's own delivered watermark per conversation: the highest seq N such that it holds every message 1..N
// (its own included). This is what it confirms with `message.received`.
export class Holdings {
  constructor() {
    this.upTo = new Map(); // conversation id -> seq
  }

  get(conversationId) {
    return this.upTo.get(conversationId) || 0;
  }

  // Move up to `seq` (what the server says is held, or a history page that reaches it); never back.
  raise(conversationId, seq) {
    if (!(seq > this.get(conversationId))) return false;
    this.upTo.set(conversationId, seq);
    return true;
  }

  // Move up over the contiguous run of seqs that `holds(seq)` says the page has.
  extend(conversationId, holds) {
    let seq = this.get(conversationId);
    while (holds(seq + 1)) seq += 1;
    return this.raise(conversationId, seq);
  }
}
