// oxi dashboard: live updates without reloading. Polls /api/live.json; when the ledger's
// token moves, fetches each panel's HTML (rendered and escaped by the server) and swaps it in,
// keeping keyboard focus where it was. Also keeps "N s ago" and "in N min" current.
"use strict";

(function () {
  const body = document.body;
  const status = document.getElementById("live-status");
  const POLL_MS = 2000;

  function span(seconds) {
    const s = Math.abs(seconds);
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 129600) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }

  function tick() {
    const now = Date.now();
    for (const el of document.querySelectorAll("[data-since]")) {
      const at = Date.parse(el.dataset.since);
      if (!Number.isNaN(at)) el.textContent = span((now - at) / 1000) + " ago";
    }
    for (const el of document.querySelectorAll("[data-until]")) {
      const at = Date.parse(el.dataset.until);
      if (Number.isNaN(at)) continue;
      el.textContent = at > now ? "in " + span((at - now) / 1000) : "due now";
    }
  }

  function say(text) {
    if (status && status.textContent !== text) status.textContent = text;
  }

  // Replace a panel's body, putting focus back on the same link or control.
  function swap(panel, html) {
    const active = document.activeElement;
    let key = null;
    if (active && panel.contains(active)) {
      key = active.id ? "#" + CSS.escape(active.id)
        : active.getAttribute("href") ? "[href=\"" + CSS.escape(active.getAttribute("href")) + "\"]"
          : null;
    }
    panel.innerHTML = html;
    if (key) {
      const again = panel.querySelector(key);
      if (again) again.focus();
    }
  }

  async function refresh(lastSeen) {
    const panels = Array.from(document.querySelectorAll("[data-panel][data-src]"));
    await Promise.all(panels.map(async function (panel) {
      const answer = await fetch(panel.dataset.src, { cache: "no-store" });
      if (!answer.ok) throw new Error("panel " + panel.dataset.panel + ": " + answer.status);
      swap(panel, await answer.text());
    }));
    for (const row of document.querySelectorAll("tr[data-event-id]")) {
      if (Number(row.dataset.eventId) > lastSeen) row.classList.add("fresh");
    }
    tick();
  }

  let token = body.dataset.token || "";
  let last = Number(body.dataset.lastEvent || 0);
  let failures = 0;

  async function poll() {
    if (!document.hidden) {
      try {
        const answer = await fetch(body.dataset.liveUrl + "?after=" + last, { cache: "no-store" });
        if (!answer.ok) throw new Error("live: " + answer.status);
        const state = await answer.json();
        const before = last;
        if (state.token !== token) {
          await refresh(before);
          token = state.token;
        }
        last = Math.max(last, Number(state.last_event_id) || 0);
        body.dataset.lastEvent = String(last);
        const fresh = state.events.length;
        const time = new Date().toLocaleTimeString();
        say(fresh ? fresh + " new event" + (fresh === 1 ? "" : "s") + " at " + time
          : "Live: up to date at " + time);
        failures = 0;
      } catch (error) {
        failures += 1;
        say("Live updates paused: the dashboard cannot be reached (" + error.message + "); retrying");
      }
      document.documentElement.dataset.ready = "1";
    }
    setTimeout(poll, Math.min(POLL_MS * (1 + failures), 30000));
  }

  tick();
  setInterval(tick, 1000);
  if (body.dataset.live === "on" && body.dataset.liveUrl) poll();
  else document.documentElement.dataset.ready = "1";
})();
