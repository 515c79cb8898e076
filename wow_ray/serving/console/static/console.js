// WOW-Ray console: live fragments over server-sent events, and the streaming demo chat.
// Served as a file (the Content-Security-Policy forbids inline scripts); no build step.
"use strict";

function fragmentUrl(el) {
  if (el.dataset.liveFragment) return el.dataset.liveFragment;
  const url = new URL(window.location.href);
  url.searchParams.set("fragment", "1");
  return url.toString();
}

async function refresh(el) {
  const typing = el.contains(document.activeElement) && document.activeElement.value;
  if (typing) { el.dataset.stale = "1"; return; }  // never wipe what an operator is typing
  const response = await fetch(fragmentUrl(el), {credentials: "same-origin"});
  if (response.ok) {
    el.innerHTML = await response.text();  // server-rendered, escaped by the templates
    el.dataset.stale = "";
    el.dispatchEvent(new CustomEvent("refreshed", {bubbles: true}));
  }
}

function live(el) {
  const source = new EventSource(el.dataset.liveEvents, {withCredentials: true});
  source.addEventListener("change", () => refresh(el));
  el.addEventListener("focusout", () => { if (el.dataset.stale) refresh(el); });
}

function sseParse(buffer, onEvent) {
  // Returns the unparsed rest of ``buffer`` after calling onEvent(name, data) per event.
  let cut;
  while ((cut = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, cut);
    buffer = buffer.slice(cut + 2);
    let name = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trimStart();
    }
    onEvent(name, data);
  }
  return buffer;
}

function chat(form) {
  const box = document.getElementById("chat");
  const streaming = document.getElementById("streaming");
  const text = document.getElementById("stream-text");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector("input[name=content]");
    const body = new URLSearchParams(new FormData(form));
    input.value = "";
    text.textContent = "";
    streaming.hidden = false;
    form.dataset.busy = "1";
    try {
      const response = await fetch(form.action, {method: "POST", body, credentials: "same-origin"});
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer = sseParse(buffer + decoder.decode(value, {stream: true}), (name, data) => {
          const payload = data ? JSON.parse(data) : {};
          if (name === "delta") text.textContent += payload.text;  // textContent: never HTML
          else if (name === "reset") text.textContent = "";
          else if (name === "error") text.textContent = "(error " + payload.status + ": " + JSON.stringify(payload.detail) + ")";
        });
      }
    } finally {
      await refresh(box);
      streaming.hidden = true;
      form.dataset.busy = "";
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live-events]").forEach(live);
  const form = document.getElementById("chat-form");
  if (form) chat(form);
});
