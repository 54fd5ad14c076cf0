// Why a tab is back at the sign-in form: it remembers, across the reload that resets it, what ended its session.

export const SIGNED_OUT_ELSEWHERE = "You were signed out in another tab.";
export const SESSION_ENDED = "Your session ended; sign in again.";

// Per tab: the reason this tab is reloading with.
const REASON_KEY = "chat.signedOutReason";
// Shared by the browser's tabs: someone is signed in and has not logged out. A page that finds it set but no
// valid session lost it without logging out (it expired, or was ended elsewhere).
const SIGNED_IN_KEY = "chat.signedIn";

function storage(kind) {
  try {
    return window[kind];
  } catch {
    return null; // storage refused (some private modes): the page simply shows no reason
  }
}

export function rememberSignedIn() {
  storage("localStorage")?.setItem(SIGNED_IN_KEY, "1");
}

// The user logs out in this tab: no reason to give anywhere.
export function forgetSignedIn() {
  storage("localStorage")?.removeItem(SIGNED_IN_KEY);
}

// Reload the tab to the sign-in form, which then says why.
export function signOutWithReason(reason) {
  storage("sessionStorage")?.setItem(REASON_KEY, reason);
  forgetSignedIn();
  location.reload();
}

// The reason to show on the sign-in form, once; "" when the user logged out here or never signed in.
export function takeSignedOutReason() {
  const session = storage("sessionStorage");
  const local = storage("localStorage");
  const reason = session?.getItem(REASON_KEY) || (local?.getItem(SIGNED_IN_KEY) ? SESSION_ENDED : "");
  session?.removeItem(REASON_KEY);
  forgetSignedIn();
  return reason;
}
