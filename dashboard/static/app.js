// Shared page helpers: the JSON API with the login's CSRF token, the page header, the live websocket.
"use strict";

const feqa = (() => {
  let me = null;

  async function api(path, options = {}) {
    const opts = { credentials: "same-origin", ...options, headers: { ...(options.headers || {}) } };
    if (opts.body !== undefined && typeof opts.body !== "string") {
      opts.body = JSON.stringify(opts.body);
      opts.headers["Content-Type"] = "application/json";
    }
    if (opts.method && opts.method !== "GET" && me) opts.headers["X-CSRF-Token"] = me.csrf;
    const res = await fetch(path, opts);
    if (res.status === 401) { location.href = "/login?reason=" + encodeURIComponent("Please log in again."); throw new Error("logged out"); }
    if (!res.ok) {
      let detail = res.statusText;
      try { const body = await res.json(); detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); } catch (e) { /* not JSON */ }
      throw new Error(detail);
    }
    const type = res.headers.get("content-type") || "";
    return type.includes("application/json") ? res.json() : res.text();
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
    return node;
  }

  function when(ts) { return ts ? new Date(ts * 1000).toLocaleString() : "-"; }
  function num(v, d = 2) { return v === null || v === undefined || Number.isNaN(v) ? "-" : Number(v).toFixed(d); }
  function badge(state, text) { return el("span", { class: "badge " + state }, text || state); }

  async function start() {
    me = await api("/api/me");
    const nav = el("nav", {}, el("a", { href: "/" }, "Patients"), el("a", { href: "/console" }, "Live console"),
      me.user.role === "admin" ? el("a", { href: "/admin" }, "Admin") : "");
    const logout = el("form", { method: "post", action: "/logout" },
      el("input", { type: "hidden", name: "csrf_token", value: me.csrf }), el("button", { class: "secondary", type: "submit", id: "logout" }, "Log out"));
    document.body.prepend(el("header", { class: "top" }, el("span", { class: "brand" }, "feqa"), nav,
      el("span", { class: "who" }, `${me.user.name || me.user.username} (${me.user.role})`), logout));
    // activity keeps the login alive; no activity for the idle limit logs out
    let lastPing = Date.now();
    const ping = () => { if (Date.now() - lastPing > 60000) { lastPing = Date.now(); api("/api/me").catch(() => {}); } };
    for (const ev of ["keydown", "mousedown", "mousemove", "touchstart"]) document.addEventListener(ev, ping, { passive: true });
    return me;
  }

  // One websocket per page; watch(sessionId) follows a session; cursors let a reconnect resume where it stopped.
  class Live {
    constructor(onItem) {
      this.onItem = onItem; this.watching = new Set(); this.cursors = {}; this.dropped = 0; this.connected = false;
      this.retry = 500; this.connect();
    }
    connect() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      this.ws = new WebSocket(`${proto}//${location.host}/ws`);
      this.ws.onopen = () => { this.connected = true; this.retry = 500; for (const id of this.watching) this.send(id); this.onItem({ t: "socket", up: true }); };
      this.ws.onmessage = (ev) => {
        const msg = JSON.parse(ev.data);
        for (const item of msg.items || [msg]) {
          if (item.id && item.sid) { this.cursors[item.sid] = this.cursors[item.sid] || {}; this.cursors[item.sid][item.t] = item.id; }
          if (item.t === "dropped") this.dropped = item.n;
          this.onItem(item);
        }
      };
      this.ws.onclose = (ev) => {
        this.connected = false; this.onItem({ t: "socket", up: false, code: ev.code });
        if (ev.code === 4401) { location.href = "/login?reason=" + encodeURIComponent(ev.reason || "Please log in again."); return; }
        setTimeout(() => this.connect(), this.retry); this.retry = Math.min(this.retry * 2, 10000);
      };
    }
    send(id) { const sid = this.sids && this.sids[id]; this.ws.send(JSON.stringify({ op: "watch", session: id, after: sid ? (this.cursors[sid] || {}) : {} })); }
    watch(id) { this.watching.add(id); if (this.connected) this.send(id); }
    remember(id, sid) { this.sids = this.sids || {}; this.sids[id] = sid; }
  }

  return { api, el, when, num, badge, start, Live, get me() { return me; } };
})();
