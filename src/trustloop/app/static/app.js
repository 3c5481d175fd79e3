// trustloop's chat page. It never sees a token: the session is an HttpOnly cookie,
// and the server answers names, ids and answer text only.
"use strict";

const NOTICES = {
  signed_out: "You are signed out. The sign-in was revoked at the identity provider.",
  signed_out_not_revoked: "You are signed out of this page, but the identity provider could not be reached to revoke the sign-in: it ends when its token expires (within 15 minutes).",
  signin_failed: "The sign-in did not complete. Please sign in again.",
  signin_expired: "The sign-in took too long or this browser blocked its cookie. Please sign in again.",
  idp_unavailable: "The identity provider is not reachable right now. Try again in a moment.",
};
const SESSION_EXPIRED = "Your session has expired. Sign in again to continue.";
const SIGN_IN_FIRST = "Sign in to ask a question.";
const NETWORK_DOWN = "The trustloop app is not reachable. Check your connection and try again.";
const STILL_WORKING = "Still working. If a tool needs your approval, approve or deny it on your authenticator.";
const QUIET_MS = 4000;

const $ = (id) => document.getElementById(id);
const state = { signedIn: false, conversationId: null, authenticatorUrl: "", busy: false };

function showNotice(message, withSignIn) {
  const box = $("notice");
  box.textContent = message;
  if (withSignIn) {
    box.append(" ");
    const link = document.createElement("a");
    link.href = "/auth/login";
    link.textContent = "Sign in";
    box.append(link);
  }
  box.hidden = false;
}

function clearNotice() {
  $("notice").hidden = true;
  $("notice").textContent = "";
}

function readNoticeFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const code = params.get("notice");
  if (window.location.search) {
    window.history.replaceState(null, "", "/");
  }
  if (code && NOTICES[code]) {
    const quiet = ["signed_out", "signed_out_not_revoked", "idp_unavailable"];
    showNotice(NOTICES[code], !quiet.includes(code));
  }
}

function renderSignedIn(info) {
  state.signedIn = true;
  state.conversationId = info.conversation_id;
  $("user").textContent = info.name + " (" + info.username + ")";
  $("user").hidden = false;
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $("new-conversation").hidden = false;
  renderActivity(info.activity || []);
}

function renderSignedOut(expired) {
  state.signedIn = false;
  state.conversationId = null;
  $("user").hidden = true;
  $("sign-in").hidden = false;
  $("sign-out").hidden = true;
  $("new-conversation").hidden = true;
  if (expired) {
    showNotice(SESSION_EXPIRED, true);
  }
}

async function loadSession() {
  let info;
  try {
    const response = await fetch("/api/session", { credentials: "same-origin" });
    info = await response.json();
  } catch (err) {
    showNotice(NETWORK_DOWN, false);
    return;
  }
  state.authenticatorUrl = info.authenticator_url || "";
  if (info.signed_in) {
    renderSignedIn(info);
  } else {
    renderSignedOut(info.expired);
  }
}

function addMessage(kind, text) {
  $("hint").hidden = true;
  const item = document.createElement("div");
  item.className = "msg " + kind;
  const label = document.createElement("span");
  label.className = "who-said";
  label.textContent = kind === "user" ? "You" : kind === "error" ? "Problem" : "trustloop";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(label, body);
  $("log").append(item);
  item.scrollIntoView({ block: "end" });
  return body;
}

// Follow the answer as it streams in, unless the clinician scrolled up to read.
function keepLatestInView() {
  const log = $("log");
  if (log.scrollHeight - log.scrollTop - log.clientHeight < 120) {
    log.scrollTop = log.scrollHeight;
  }
}

function addStatusLine(text, refused) {
  const line = document.createElement("p");
  line.className = "status-line" + (refused ? " refused" : "");
  line.textContent = text;
  $("log").append(line);
}

function renderActivity(calls) {
  $("activity").replaceChildren();
  calls.forEach(addActivity);
}

function addActivity(call) {
  $("activity-empty").hidden = true;
  const item = document.createElement("li");
  const tool = document.createElement("div");
  tool.className = "tool";
  tool.textContent = call.tool;
  const patient = document.createElement("div");
  patient.textContent = "Patient: " + (call.patient || "—");
  const decision = document.createElement("div");
  decision.textContent = "Decision: ";
  const verdict = document.createElement("span");
  verdict.className = "decision " + call.decision;
  verdict.textContent = call.decision;
  decision.append(verdict);
  const jti = document.createElement("div");
  jti.textContent = "OBO jti: ";
  const code = document.createElement("code");
  code.textContent = call.obo_jti || "none (no token issued)";
  jti.append(code);
  item.append(tool, patient, decision, jti);
  $("activity").append(item);
}

function showWaiting(message) {
  $("waiting-text").textContent = message;
  $("waiting-link").href = state.authenticatorUrl;
  $("waiting-link").hidden = !state.authenticatorUrl;  // on Verify: the phone app
  $("waiting").hidden = false;
  $("waiting").scrollIntoView({ block: "nearest" });
}

function hideWaiting() {
  $("waiting").hidden = true;
}

function setBusy(busy) {
  state.busy = busy;
  $("send").disabled = busy;
}

async function refusalMessage(response) {
  try {
    const body = await response.json();
    return { message: body.message || SIGN_IN_FIRST, code: body.error };
  } catch (err) {
    const message = "The app could not take the question (HTTP " + response.status + ").";
    return { message: message, code: "" };
  }
}

function handleFrame(frame, answer) {
  if (frame.type === "text") {
    hideWaiting();
    answer.textContent += frame.text;
    keepLatestInView();
  } else if (frame.type === "waiting") {
    showWaiting(frame.message);
  } else if (frame.type === "tool") {
    hideWaiting();
    addActivity(frame);
    if (frame.decision !== "allowed") {
      const patient = frame.patient ? " for " + frame.patient : "";
      addStatusLine("Not allowed: " + frame.tool + patient + " was " + frame.decision +
        ". Nothing was read or changed by that call.", true);
    }
  } else if (frame.type === "error") {
    hideWaiting();
    if (!answer.textContent) {
      answer.parentElement.remove();
    }
    addMessage("error", frame.message);
    return true;
  } else if (frame.type === "done") {
    hideWaiting();
    return true;
  }
  return false;
}

async function readStream(response, answer) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let quiet = setTimeout(() => showWaiting(STILL_WORKING), QUIET_MS);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        return;
      }
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = event.split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5))
          .join("");
        if (!data) {
          continue;
        }
        clearTimeout(quiet);
        const frame = JSON.parse(data);
        if (handleFrame(frame, answer)) {
          return;
        }
        if (frame.type !== "waiting") {
          quiet = setTimeout(() => showWaiting(STILL_WORKING), QUIET_MS);
        }
      }
    }
  } finally {
    clearTimeout(quiet);
  }
}

async function ask(question) {
  clearNotice();
  addMessage("user", question);
  setBusy(true);
  try {
    const response = await fetch("/api/chat", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
      body: JSON.stringify({ conversation_id: state.conversationId, message: question }),
    });
    if (!response.ok) {
      const refusal = await refusalMessage(response);
      const signIn = refusal.code === "sign_in_required" || refusal.code === "session_expired";
      if (signIn) {
        renderSignedOut(false);
      }
      addMessage("error", refusal.message);
      showNotice(refusal.message, signIn);
      return;
    }
    const answer = addMessage("assistant", "");
    await readStream(response, answer);
  } catch (err) {
    hideWaiting();
    addMessage("error", NETWORK_DOWN);
  } finally {
    setBusy(false);
  }
}

async function newConversation() {
  const response = await fetch("/api/conversations", {
    method: "POST",
    credentials: "same-origin",
  });
  if (!response.ok) {
    const refusal = await refusalMessage(response);
    showNotice(refusal.message, true);
    return;
  }
  const body = await response.json();
  state.conversationId = body.conversation_id;
  $("log").replaceChildren($("hint"));
  $("hint").hidden = false;
  renderActivity([]);
  $("activity-empty").hidden = false;
  $("question").focus();
}

function onSubmit(event) {
  event.preventDefault();
  if (state.busy) {
    return;
  }
  const question = $("question").value.trim();
  if (!question) {
    showNotice("Type a question first.", false);
    return;
  }
  $("question").value = "";
  ask(question);
}

function onKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("composer").addEventListener("submit", onSubmit);
  $("question").addEventListener("keydown", onKey);
  $("new-conversation").addEventListener("click", newConversation);
  readNoticeFromUrl();
  loadSession();
});
