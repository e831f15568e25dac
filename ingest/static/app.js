// Patient page: consent, camera preview, WebRTC to ingest, the guided protocol, coaching, end screen.
// Plain browser JavaScript, no build step. The page state is mirrored on <body data-phase> for tests.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const token = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const session = { sid: "", key: "", pc: null, stream: null, ws: null, ended: false };

  function phase(name) {
    document.body.dataset.phase = name;
    for (const id of ["consent-screen", "task-screen", "end-screen", "error-screen"]) {
      $(id).hidden = !id.startsWith(name);
    }
  }

  function fail(message) {
    $("error-text").textContent = message;
    phase("error");
    stopMedia();
  }

  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (session.key) headers["X-Session-Key"] = session.key;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      keepalive: method === "POST" && path.endsWith("/end") });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(typeof data.detail === "string" ? data.detail : `request failed (${res.status})`);
    return data;
  }

  function setConn(text, cls) {
    const el = $("conn");
    el.textContent = text;
    el.className = "pill " + (cls || "");
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function startCamera() {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 }, facingMode: "user" },
    });
    const [track] = stream.getVideoTracks();
    track.contentHint = "detail"; // keep full resolution: the landmarks need detail more than smooth motion
    $("preview").srcObject = stream;
    session.stream = stream;
    return track;
  }

  function stopMedia() {
    if (session.ws) session.ws.close();
    if (session.pc) session.pc.close();
    if (session.stream) session.stream.getTracks().forEach((t) => t.stop());
  }

  function waitGathered(pc, ms) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, ms);
    });
  }

  function waitConnected(pc, ms) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pc.connectionState === "connected") resolve();
        else if (pc.connectionState === "failed" || pc.connectionState === "closed") reject(new Error("the connection failed"));
      };
      pc.addEventListener("connectionstatechange", check);
      setTimeout(() => reject(new Error("could not connect to the clinic's server")), ms);
      check();
    });
  }

  async function connect(track, iceServers) {
    const pc = new RTCPeerConnection({ iceServers });
    session.pc = pc;
    pc.addEventListener("connectionstatechange", () => {
      const s = pc.connectionState;
      setConn(s === "connected" ? "connected" : s, s === "connected" ? "ok" : s === "failed" ? "bad" : "");
      if ((s === "failed" || s === "closed") && !session.ended) fail("The connection was lost. Please try again later.");
    });
    const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [session.stream] });
    const params = transceiver.sender.getParameters();
    params.degradationPreference = "maintain-resolution";
    await transceiver.sender.setParameters(params).catch(() => undefined);
    await pc.setLocalDescription(await pc.createOffer());
    await waitGathered(pc, 3000);
    setConn("connecting");
    const answer = await api("POST", `/api/sessions/${session.sid}/offer`, pc.localDescription.toJSON());
    await pc.setRemoteDescription(answer);
    await waitConnected(pc, 20000);
  }

  function openCoach() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/api/sessions/${session.sid}/coach?key=${encodeURIComponent(session.key)}`;
    const ws = new WebSocket(url);
    let hideTimer = null;
    ws.addEventListener("message", (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type !== "coach") return;
      const el = $("coach");
      el.textContent = msg.text;
      el.hidden = false;
      clearTimeout(hideTimer);
      hideTimer = setTimeout(() => { el.hidden = true; }, 5000);
    });
    session.ws = ws;
  }

  async function countdown(seconds) {
    const el = $("countdown");
    el.hidden = false;
    for (let s = Math.ceil(seconds); s > 0; s--) {
      el.textContent = String(s);
      await sleep(Math.min(1000, seconds * 1000));
    }
    el.hidden = true;
  }

  async function hold(seconds) {
    const end = performance.now() + seconds * 1000;
    while (!session.ended) {
      const left = (end - performance.now()) / 1000;
      if (left <= 0) break;
      $("timer").textContent = `Hold for ${left.toFixed(0)} s`;
      await sleep(Math.min(250, left * 1000));
    }
    $("timer").textContent = "";
  }

  async function runProtocol(protocol) {
    phase("task");
    const total = protocol.tasks.reduce((n, t) => n + t.reps, 0);
    let done = 0;
    for (const task of protocol.tasks) {
      for (let rep = 1; rep <= task.reps; rep++) {
        if (session.ended) return;
        done += 1;
        $("step").textContent = `Step ${done} of ${total}` + (task.reps > 1 ? ` (repetition ${rep} of ${task.reps})` : "");
        $("prompt").textContent = task.prompt;
        $("timer").textContent = "Get ready";
        await countdown(protocol.countdown_s);
        await api("POST", `/api/sessions/${session.sid}/events`, { type: "task_start", task: task.name, rep });
        await hold(task.hold_s);
        await api("POST", `/api/sessions/${session.sid}/events`, { type: "task_end", task: task.name, rep });
        if (done < total && protocol.rest_s > 0) {
          $("prompt").textContent = "Relax";
          await sleep(protocol.rest_s * 1000);
        }
      }
    }
  }

  async function finish(reason, title, text) {
    if (session.ended) return;
    session.ended = true;
    try {
      await api("POST", `/api/sessions/${session.sid}/end`, { reason });
    } catch (err) {
      // the session may already be over on the server (timed out, ended elsewhere): the patient is done anyway
      console.log("end: " + err.message);
    } finally {
      stopMedia();
      setConn("ended");
      $("end-title").textContent = title;
      $("end-text").textContent = text;
      phase("end");
    }
  }

  async function start(track) {
    $("start").disabled = true;
    const joined = await api("POST", `/api/join/${encodeURIComponent(token)}`, { consent: true });
    session.sid = joined.sid;
    session.key = joined.key;
    await connect(track, joined.ice_servers);
    openCoach();
    await runProtocol(joined.protocol);
    await finish("completed", "Thank you", "All steps are done. You can close this page.");
  }

  async function main() {
    try {
      const info = await api("GET", `/api/join/${encodeURIComponent(token)}`);
      $("title").textContent = info.title;
      const list = $("consent-list");
      for (const [flag, on] of Object.entries(info.consent)) {
        const li = document.createElement("li");
        li.textContent = `${flag.replace("_", " ")}: ${on ? "yes" : "no"}`;
        list.appendChild(li);
      }
      const track = await startCamera();
      phase("consent");
      $("consent").addEventListener("change", (ev) => { $("start").disabled = !ev.target.checked; });
      $("start").addEventListener("click", () => start(track).catch((err) => fail(err.message)));
      $("hangup").addEventListener("click", () =>
        finish("hangup", "Session ended", "You ended the session. You can close this page.").catch((err) => fail(err.message)));
      window.addEventListener("pagehide", () => {
        if (session.sid && !session.ended) api("POST", `/api/sessions/${session.sid}/end`, { reason: "hangup" }).catch(() => undefined);
      });
    } catch (err) {
      fail(err.name === "NotAllowedError" ? "Camera access was refused. Allow the camera and reload the page." : err.message);
    }
  }

  main();
})();
