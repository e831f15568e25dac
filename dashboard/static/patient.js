"use strict";
(async () => {
  const { api, el, when, num, badge } = feqa;
  const me = await feqa.start();
  const id = Number(location.pathname.split("/").pop());
  const data = await api(`/api/patients/${id}`);
  const p = data.patient;
  document.title = `feqa - ${p.display_name}`;
  document.getElementById("name").textContent = p.display_name;
  document.getElementById("facts").textContent = `record no. ${p.mrn} · born ${p.birth_year || "-"} · ${p.diagnosis || "no diagnosis recorded"} · ref ${p.ref}`;
  document.getElementById("history-csv").href = `/api/patients/${id}/history.csv`;
  const select = document.getElementById("protocol");
  for (const [name, proto] of Object.entries(me.protocols)) select.append(el("option", { value: name }, `${proto.title} (${name})`));
  document.querySelector("#sessions tbody").replaceChildren(...data.sessions.map((s) => el("tr", {},
    el("td", {}, el("a", { href: `/sessions/${s.id}` }, when(s.created_ts))), el("td", {}, s.protocol),
    el("td", {}, badge(s.state === "ended" ? "ended" : "live", s.state)))));

  document.getElementById("start-session").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = { protocol: f.get("protocol"), consent: { live_scoring: !!f.get("live_scoring"), recording: !!f.get("recording"), research: !!f.get("research") } };
    const msg = document.getElementById("start-message");
    msg.textContent = "asking the ingest for a patient link…";
    try {
      const s = await api(`/api/patients/${id}/sessions`, { method: "POST", body });
      msg.textContent = "";
      const link = document.getElementById("join-url"); link.href = s.join_url; link.textContent = s.join_url;
      document.getElementById("qr").src = `/api/sessions/${s.id}/qr.svg`;
      document.getElementById("watch").href = `/sessions/${s.id}`;
      document.getElementById("join").classList.remove("hidden");
    } catch (e) { msg.textContent = e.message; }
  });

  const charts = document.getElementById("trends");
  async function trends(params) {
    if (!data.tasks.length) return;
    charts.replaceChildren();
    for (const { protocol, task } of data.tasks) {
      const q = new URLSearchParams({ protocol, task, ...params });
      const r = await api(`/api/patients/${id}/longitudinal?${q}`);
      const box = el("div", { class: "plot" });
      const flag = r.flag.worse ? badge("flag", "worse than baseline") : badge("", r.flag.reason);
      const slope = r.trend.slope_per_30d === null ? "-" : `${num(r.trend.slope_per_30d)} per 30 days`;
      charts.append(el("h3", {}, `${protocol} / ${task} `, flag), el("p", { class: "small muted" },
        `baseline ${r.baseline.source}: ${num(r.baseline.low)} – ${num(r.baseline.high)} (n=${r.baseline.n}) · trend ${slope}`), box);
      const xs = r.ts, ys = r.values;
      const lo = xs.map(() => r.baseline.low), hi = xs.map(() => r.baseline.high);
      const days = xs.map((t) => (t - (xs[0] || 0)) / 86400);
      const fit = days.map((d) => (r.trend.slope_per_30d === null ? null : r.trend.intercept + (r.trend.slope_per_30d / 30) * d));
      new uPlot({ width: Math.max(320, charts.clientWidth - 10), height: 200, scales: { y: { range: [r.scale.min, r.scale.max] } },
        series: [{}, { label: "task score", stroke: "#c0392b", points: { show: true, size: 7 } },
          { label: "baseline low", stroke: "#2a8a4a", dash: [4, 4] }, { label: "baseline high", stroke: "#2a8a4a", dash: [4, 4] },
          { label: "trend", stroke: "#888" }] }, [xs, ys, lo, hi, fit], box);
    }
  }
  document.getElementById("baseline").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const params = f.get("start") && f.get("end") ? { start: f.get("start"), end: f.get("end") } : { first_n: f.get("first_n") || 3 };
    trends(params).catch((e) => charts.replaceChildren(el("p", { class: "message" }, e.message)));
  });
  await trends({});
})();
