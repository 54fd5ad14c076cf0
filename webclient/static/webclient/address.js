// The page's address: `/` is the list, `/c/<id>` a conversation (the server serves the same page at both).
//
// Opening a conversation pushes its address, so the browser's Back goes to the conversation before it, then to
// the list; a reload or a shared link opens it again. Each entry the page writes remembers whether the list lies
// right below it, so that the page's own "Back to conversations" can step back to it instead of stacking
// another entry on top.

const PATH = /^\/c\/(.+?)\/?$/;
// What a conversation id can look like (the server's are UUIDs); anything else in an address is not looked up.
const CONVERSATION_ID = /^[0-9A-Za-z-]{1,64}$/;

export function isConversationId(text) {
  return CONVERSATION_ID.test(text);
}

// The conversation id in the address bar, or null on the list.
export function addressedConversation() {
  const match = PATH.exec(location.pathname);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return match[1]; // a malformed escape: the page says the conversation is not found
  }
}

function pathOf(conversationId) {
  return conversationId === null ? "/" : `/c/${encodeURIComponent(conversationId)}`;
}

// Make the current entry the page's own (on load): its address stays as it is.
export function adoptAddress() {
  history.replaceState({ conversationId: addressedConversation(), listBelow: false }, "", location.href);
}

// Show `conversationId` (null: the list) in the address bar as a new entry, unless it is there already.
export function pushAddress(conversationId) {
  if (addressedConversation() === conversationId) return;
  const listBelow = addressedConversation() === null;
  history.pushState({ conversationId, listBelow }, "", pathOf(conversationId));
}

// Go to the list: back one entry when the list is right below, else a new entry for it. Returns whether it went
// back (the page then closes its pane when the browser says the address changed).
export function backToList() {
  if (history.state && history.state.listBelow) {
    history.back();
    return true;
  }
  pushAddress(null);
  return false;
}

// Call `handler(conversationId or null)` whenever Back or Forward changes the address.
export function onAddressChange(handler) {
  window.addEventListener("popstate", () => handler(addressedConversation()));
}
