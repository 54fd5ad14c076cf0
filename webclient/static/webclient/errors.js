// The server's error answers in plain words: one function turns every shape of `{code, detail}` into sentences.

// What each field of a request is called on the page.
const FIELD_NAMES = {
  username: "Username",
  password: "Password",
  displayName: "Display name",
  title: "Title",
  content: "The message",
  participantIds: "People",
  userIds: "People",
  search: "Search",
  role: "Role",
};

// What an answer without a usable detail means, by HTTP status.
function byStatus(status) {
  if (status === 401 || status === 403) return "Your session ended; sign in again.";
  if (status === 404) return "Not found.";
  if (status === 429) return "Too many attempts; wait a moment and try again.";
  if (status >= 500) return "Something went wrong on the server; try again in a moment.";
  return "The server refused this; try again.";
}

function sentence(text) {
  const trimmed = String(text).trim();
  if (!trimmed) return "";
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?…]$/.test(capital) ? capital : `${capital}.`;
}

function lowerFirst(text) {
  return text ? text[0].toLowerCase() + text.slice(1) : text;
}

// One problem with a field, said with the field's name where the message does not name it.
function fieldSentence(field, message) {
  const text = String(message).trim();
  const label = FIELD_NAMES[field];
  if (!label || field === "detail" || field === "non_field_errors") return sentence(text);
  if (text.startsWith("This field ")) return sentence(`${label} ${text.slice("This field ".length)}`);
  if (/^(Must|May|Cannot|Can't|Is|Should)\b/.test(text)) return sentence(`${label} ${lowerFirst(text)}`);
  if (/^[a-z]/.test(text)) return sentence(`${label}: ${text}`);
  return sentence(text);
}

function messagesOf(field, problem) {
  if (Array.isArray(problem)) return problem.flatMap((p) => messagesOf(field, p));
  if (problem && typeof problem === "object") {
    return Object.entries(problem).flatMap(([inner, p]) => messagesOf(FIELD_NAMES[inner] ? inner : field, p));
  }
  return problem === null || problem === undefined ? [] : [fieldSentence(field, problem)];
}

// Sentences for an error answer's body (REST) or an `error` frame, e.g. "This password is too short. It must
// contain at least 8 characters." for `{detail: {detail: ["This password is too short. It must contain ..."]}}`.
export function describeError(body, status = 400) {
  const detail = body && body.detail;
  const said = messagesOf("detail", detail).filter(Boolean);
  return said.length ? said.join(" ") : byStatus(status);
}
