"use strict";
(async () => {
  const { api, el, when, num, badge } = feqa;
  const me = await feqa.start();
  const id = Number(location.pathname.split("/").pop());
  let detail = await api(`/api/sessions/${id}`);
  const s = detail.session, proto = me.protocols[s.protocol], scale = proto.scale;
  const MAX = 3000;
  document.getElementById("patient").textContent = detail.patient ? detail.patient.display_name : "Session";
  const stateBox = document.getElementById("state");
  // why a session ended, in words where the code alone would puzzle a clinician
  const ENDED = { state_lost: "the server lost this session's live state (a restart); start a new session" };
  const setState = (st, why) => stateBox.replaceChildren(badge(st === "ended" ? "ended" : "live",
    st === "ended" && why ? `ended: ${ENDED[why] || why}` : st));
  setState(s.state, s.end_reason);
  const consent = Object.entries(s.consent).map(([k, v]) => `${k.replace("_", " ")}: ${v ? "yes" : "no"}`).join(", ");
  document.getElementById("facts").textContent = `${proto.title} · session ${s.sid} · started ${when(s.started_ts || s.created_ts)} · consent ${consent}`;
  document.getElementById("pdf").href = `/api/sessions/${id}/report.pdf`;
  document.getElementById("csv").href = `/api/sessions/${id}/scores.csv`;
  document.getElementById("labels").href = `/api/sessions/${id}/labels.csv`;
  if (!s.consent.research) document.getElementById("labels-wrap").classList.add("hidden");
  document.getElementById("scale").textContent = `${scale.source}, ${scale.min}–${scale.max}, higher is worse`;
  if (s.join_url) {
    document.getElementById("join").classList.remove("hidden");
    const a = document.getElementById("join-url"); a.href = s.join_url; a.textContent = s.join_url;
    document.getElementById("qr").src = `/api/sessions/${id}/qr.svg`;
  }
  document.getElementById("end").addEventListener("click", async () => {
    if (!confirm("End this session for the patient?")) return;
    try { const r = await api(`/api/sessions/${id}/end`, { method: "POST", body: {} }); setState(r.state); }
    catch (e) { document.getElementById("end-message").textContent = e.message; }
  });

  // ---- plots
  const width = () => Math.max(300, document.getElementById("plot").clientWidth - 10);
  const plotData = [[], []];
  let activeTask = "";
  const plot = new uPlot({ width: width(), height: 220, scales: { x: { time: true }, y: { range: [scale.min, scale.max] } },
    series: [{}, { label: "score", stroke: "#2f6db5", width: 2, spanGaps: false }] }, plotData, document.getElementById("plot"));
  window.feqaPlot = plot;
  const kin = {};
  for (const group of ["rom", "asym", "blink"]) kin[group] = { names: [], data: [[]], plot: null, box: document.getElementById(`k-${group}`) };
  function addKinematics(ts, values) {
    for (const [group, k] of Object.entries(kin)) {
      const names = Object.keys(values).filter((n) => n.includes(group)).sort();
      if (!names.length) continue;
      if (!k.plot || names.join() !== k.names.join()) {
        k.names = names; k.data = [[], ...names.map(() => [])];
        k.box.replaceChildren();
        k.plot = new uPlot({ width: 300, height: 150, scales: { x: { time: true } }, legend: { show: true },
          series: [{}, ...names.map((n, i) => ({ label: n, stroke: ["#2f6db5", "#c0392b", "#2a8a4a", "#b7791f"][i % 4] }))] }, k.data, k.box);
      }
      k.data[0].push(ts); names.forEach((n, i) => k.data[i + 1].push(values[n]));
      if (k.data[0].length > MAX) for (const arr of k.data) arr.shift();
      k.plot.setData(k.data);
    }
  }

  // ---- task scores and ratings
  const ratings = {};
  for (const r of detail.ratings) ratings[`${r.task}#${r.rep}`] = r;
  const taskRows = {};
  function ratingForm(task, rep) {
    const input = scale.integer
      ? el("select", { name: "value" }, scale.anchors.map((a, i) => el("option", { value: scale.min + i }, `${scale.min + i}: ${a}`)))
      : el("input", { name: "value", type: "number", min: scale.min, max: scale.max, step: "0.1", value: scale.min, required: true });
    const note = el("input", { name: "note", placeholder: "note", maxlength: "2000" });
    const msg = el("span", { class: "message small" });
    return el("form", { class: "rate", "data-task": task, "data-rep": rep, onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await api(`/api/sessions/${id}/ratings`, { method: "POST", body: { task, rep, value: Number(input.value), note: note.value } });
        ratings[`${task}#${rep}`] = r; msg.textContent = "saved"; renderTask({ task, rep });
      } catch (e) { msg.textContent = e.message; }
    } }, input, note, el("button", { type: "submit" }, "Save"), msg);
  }
  function renderTask(t) {
    const key = `${t.task}#${t.rep}`;
    let row = taskRows[key];
    if (t.score !== undefined) row = taskRows[key] = { ...row, ...t };
    const data = taskRows[key]; if (!data) return;
    const r = ratings[key];
    const tr = el("tr", { id: `task-${t.task}-${t.rep}` }, el("td", {}, `${data.task} #${data.rep + 1}`),
      el("td", {}, data.score === null ? badge("warn", data.withheld || "withheld") : num(data.score)),
      el("td", { class: "rating" }, r ? `${num(r.value, 1)} (${r.by})${r.note ? " – " + r.note : ""}` : "-"),
      el("td", {}, ratingForm(data.task, data.rep)));
    const old = document.getElementById(tr.id);
    if (old) old.replaceWith(tr); else document.querySelector("#tasks tbody").append(tr);
  }
  for (const t of detail.task_scores) renderTask(t);

  // ---- live feed
  let lastScoreTs = 0;
  const seen = new Set();
  function onScore(d) {
    if (d.kind === "task") { renderTask(d); return; }
    if (d.task !== activeTask && d.task) { activeTask = d.task; setTask(d.task); plotData[0].length = 0; plotData[1].length = 0; }
    lastScoreTs = Date.now();
    if (stateBox.textContent === "created") { setState("live"); document.getElementById("join").classList.add("hidden"); }
    plotData[0].push(d.ts); plotData[1].push(d.score);
    if (plotData[0].length > MAX) { plotData[0].shift(); plotData[1].shift(); }
    plot.setData(plotData);
    document.body.dataset.points = String(plotData[0].filter((x, i) => plotData[1][i] !== null).length);
    document.getElementById("score").textContent = d.score === null ? "–" : num(d.score);
    document.getElementById("withheld").textContent = d.withheld || "no";
    document.getElementById("quality").textContent = Object.entries(d.quality || {}).map(([k, v]) => `${k} ${num(v)}`).join(", ") || "-";
    addKinematics(d.ts, d.kinematics || {});
  }
  function setTask(task) {
    document.getElementById("task").textContent = task || "no task";
    const t = proto.tasks.find((x) => x.name === task);
    document.getElementById("prompt").textContent = t ? t.prompt : "";
  }
  function onHealth(rows) {
    document.querySelector("#health tbody").replaceChildren(...rows.map((h) => {
      const drops = Object.entries(h.counters).filter(([k]) => k.includes("drop")).reduce((a, [, v]) => a + v, 0);
      return el("tr", {}, el("td", {}, `${h.service} ${h.instance}`),
        el("td", {}, `${num(h.gauges.latency_p50_ms, 0)} / ${num(h.gauges.latency_p99_ms, 0)}`), el("td", {}, String(drops)),
        el("td", {}, h.stale ? badge("stale", "silent") : badge("live", "ok")));
    }));
  }
  const live = new feqa.Live((item) => {
    if (item.t === "score") { if (!seen.has(item.id)) { seen.add(item.id); onScore(item.d); } }
    else if (item.t === "event") {
      const e = item.d;
      if (e.type === "task_start") { activeTask = e.task; setTask(e.task); plotData[0].length = 0; plotData[1].length = 0; plot.setData(plotData); }
      else if (e.type === "task_end") setTask("");
      else if (e.type === "session_end") setState("ended", e.text);
    } else if (item.t === "coach") { const c = document.getElementById("coach"); c.textContent = item.d.text; c.classList.remove("hidden"); }
    else if (item.t === "health") onHealth(item.d);
    else if (item.t === "socket") document.getElementById("socket").textContent = item.up ? "live connection up" : "reconnecting…";
    else if (item.t === "dropped") document.getElementById("socket").textContent = `live connection up; ${item.n} old points skipped (slow link)`;
  });
  live.remember(id, s.sid);
  live.watch(id);
  setInterval(() => {
    const ended = stateBox.textContent === "ended";
    const age = lastScoreTs ? (Date.now() - lastScoreTs) / 1000 : Infinity;
    const stale = !ended && (lastScoreTs ? age > me.stale_after_s : stateBox.textContent === "live");
    document.body.dataset.stale = stale ? "1" : "0";
    document.getElementById("stale-age").textContent = Number.isFinite(age) ? age.toFixed(0) : "—";
  }, 1000);
})();
