// Patient page: consent, camera preview, WebRTC to ingest, the guided protocol, coaching, end screen.
// Plain browser JavaScript, no build step, no inline script (the page's Content-Security-Policy forbids it).
// The page state is mirrored on <body data-phase> for tests; <body data-beeps> counts the end-of-hold sounds.
// Reloading (or opening the link again) while the session is open resumes it: the server hands out a new page key
// and the repetitions already done, and this page carries on from there.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const token = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const session = { sid: "", key: "", pc: null, stream: null, ws: null, ended: false, audio: null };
  const SCREENS = ["loading-screen", "consent-screen", "task-screen", "end-screen", "error-screen"];

  // What each consent flag means, in words a patient reads (yes / no).
  const CONSENT_WORDS = {
    live_scoring: [
      "The clinic's software rates your facial movements while you do them, for your care team.",
      "Your movements are not rated automatically; your care team only sees how your face moved.",
    ],
    recording: [
      "A recording of the video is kept for your care team.",
      "No recording is kept: the video is deleted when the session ends.",
    ],
    research: [
      "Your results may be used for research, without your name.",
      "Your results are not used for research.",
    ],
  };

  function phase(name) {
    document.body.dataset.phase = name;
    for (const id of SCREENS) $(id).hidden = !id.startsWith(name + "-");
  }

  function fail(message, title, retry) {
    $("error-title").textContent = title || "Something went wrong";
    $("error-text").textContent = message;
    $("retry").hidden = !retry;
    phase("error");
    stopMedia();
  }

  // Camera problems in plain words (the browser's own messages are for developers).
  function cameraProblem(err) {
    const name = err && err.name;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return ["The camera cannot be used on this page",
        "Your browser only allows the camera on a secure (https) page. Please ask your clinician for a secure link."];
    }
    if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
      return ["No camera found",
        "We could not find a camera. Connect a camera, or open this link on a phone, tablet or computer that has one, then press Try again."];
    }
    if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
      return ["The camera is busy",
        "Another program is using your camera, for example a video call. Close it, then press Try again."];
    }
    if (name === "NotAllowedError" || name === "PermissionDeniedError" || name === "SecurityError") {
      return ["Camera access was refused",
        "This check needs your camera. Allow the camera for this page (look for the camera symbol in the address bar), then press Try again."];
    }
    return ["The camera did not start", "Your camera could not be started. Press Try again; if it keeps happening, restart your browser."];
  }

  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (session.key) headers["X-Session-Key"] = session.key;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      keepalive: method === "POST" && path.endsWith("/end") });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = new Error(typeof data.detail === "string" ? data.detail : `request failed (${res.status})`);
      err.status = res.status;
      throw err;
    }
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
      setTimeout(() => reject(new Error("We could not connect to the clinic's server. Check your internet connection and reload this page.")), ms);
      check();
    });
  }

  async function connect(track, iceServers) {
    const pc = new RTCPeerConnection({ iceServers });
    session.pc = pc;
    pc.addEventListener("connectionstatechange", () => {
      const s = pc.connectionState;
      setConn(s === "connected" ? "connected" : s, s === "connected" ? "ok" : s === "failed" ? "bad" : "");
      if ((s === "failed" || s === "closed") && !session.ended) {
        fail("The connection to the clinic was lost. Reload this page to continue your session where you left off.",
          "Connection lost", true);
      }
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
    try {
      for (let s = Math.ceil(seconds); s > 0; s--) {
        el.textContent = String(s);
        await sleep(Math.min(1000, seconds * 1000));
      }
    } finally {
      el.hidden = true;
      el.textContent = "";
    }
  }

  async function hold(seconds) {
    const end = performance.now() + seconds * 1000;
    while (!session.ended) {
      const left = (end - performance.now()) / 1000;
      if (left <= 0) break;
      $("timer").textContent = `Hold for ${Math.ceil(left)} s`;
      await sleep(Math.min(250, left * 1000));
    }
    $("timer").textContent = "";
  }

  // Two short tones: the patient whose eyes are shut hears that the hold is over.
  function beep() {
    const ctx = session.audio;
    if (ctx) {
      if (ctx.state === "suspended") ctx.resume().catch(() => undefined);
      const gain = ctx.createGain();
      gain.gain.value = 0.25;
      gain.connect(ctx.destination);
      [0, 0.3].forEach((at, i) => {
        const osc = ctx.createOscillator();
        osc.frequency.value = i ? 1046 : 880;
        osc.connect(gain);
        osc.start(ctx.currentTime + at);
        osc.stop(ctx.currentTime + at + 0.2);
      });
    }
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || "0") + 1);
  }

  async function openEyesCue() {
    beep();
    $("prompt").textContent = "Open your eyes";
    const el = $("cue");
    el.hidden = false;
    document.body.dataset.cue = "open-eyes";
    await sleep(1500);
    el.hidden = true;
    delete document.body.dataset.cue;
  }

  async function runProtocol(protocol, done) {
    phase("task");
    const finished = new Set(done.map(([task, rep]) => `${task}/${rep}`));
    const total = protocol.tasks.reduce((n, t) => n + t.reps, 0);
    let step = 0;
    for (const task of protocol.tasks) {
      for (let rep = 1; rep <= task.reps; rep++) {
        if (session.ended) return;
        step += 1;
        if (finished.has(`${task.name}/${rep}`)) continue;
        $("step").textContent = `Step ${step} of ${total}` + (task.reps > 1 ? ` (repetition ${rep} of ${task.reps})` : "");
        $("prompt").textContent = task.prompt;
        $("timer").textContent = task.eyes_closed ? "Get ready. Keep your eyes shut until you hear the beep." : "Get ready";
        await countdown(protocol.countdown_s);
        await api("POST", `/api/sessions/${session.sid}/events`, { type: "task_start", task: task.name, rep });
        await hold(task.hold_s);
        await api("POST", `/api/sessions/${session.sid}/events`, { type: "task_end", task: task.name, rep });
        if (task.eyes_closed) await openEyesCue();
        if (step < total && protocol.rest_s > 0) {
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
    const Audio = window.AudioContext || window.webkitAudioContext;
    if (Audio) session.audio = new Audio(); // made on the click: browsers allow sound only after a gesture
    const joined = await api("POST", `/api/join/${encodeURIComponent(token)}`, { consent: true });
    session.sid = joined.sid;
    session.key = joined.key;
    await connect(track, joined.ice_servers);
    openCoach();
    await runProtocol(joined.protocol, joined.done || []);
    await finish("completed", "Thank you", "All steps are done. You can close this page.");
  }

  function showConsent(info) {
    $("title").textContent = info.title;
    const list = $("consent-list");
    list.textContent = "";
    for (const [flag, on] of Object.entries(info.consent)) {
      const words = CONSENT_WORDS[flag];
      const li = document.createElement("li");
      li.textContent = words ? words[on ? 0 : 1] : `${flag}: ${on ? "yes" : "no"}`;
      list.appendChild(li);
    }
    if (info.resume) {
      $("resume-note").hidden = false;
      $("start").textContent = "Continue";
    }
    phase("consent");
  }

  function failed(err) {
    if (err.status === 403) {
      fail("This session was continued on another page or device. Use that one, or open your link again here.",
        "Session continued elsewhere");
    } else {
      fail(err.message);
    }
  }

  async function main() {
    $("retry").addEventListener("click", () => location.reload());
    let info;
    try {
      info = await api("GET", `/api/join/${encodeURIComponent(token)}`);
    } catch (err) {
      fail(err.message, err.status === 410 || err.status === 404 ? "This link cannot be used" : undefined);
      return;
    }
    let track;
    try {
      track = await startCamera();
    } catch (err) {
      const [title, text] = cameraProblem(err);
      fail(text, title, true);
      return;
    }
    showConsent(info);
    $("consent").addEventListener("change", (ev) => { $("start").disabled = !ev.target.checked; });
    $("start").addEventListener("click", () => start(track).catch(failed));
    $("hangup").addEventListener("click", () =>
      finish("hangup", "Session ended", "You ended the session. You can close this page.").catch(failed));
    // No end call when the page goes away: a reload must be able to resume; the server ends a session whose
    // connection stays gone for its grace time.
  }

  main();
})();
