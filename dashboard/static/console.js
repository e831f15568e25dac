"use strict";
(async () => {
  const { api, el, num, badge } = feqa;
  const me = await feqa.start();
  const tiles = {};
  const live = new feqa.Live((item) => {
    if (item.t === "score") {
      const tile = tiles[item.sid]; if (!tile || item.d.kind !== "window") return;
      tile.last = Date.now();
      tile.score.textContent = item.d.score === null ? "–" : num(item.d.score);
      tile.task.textContent = item.d.task || "no task";
      tile.note.textContent = item.d.withheld ? `withheld: ${item.d.withheld}` : "";
      tile.data[0].push(item.d.ts); tile.data[1].push(item.d.score);
      if (tile.data[0].length > 600) { tile.data[0].shift(); tile.data[1].shift(); }
      tile.plot.setData(tile.data);
    } else if (item.t === "health") {
      document.querySelector("#health tbody").replaceChildren(...item.d.map((h) => el("tr", {},
        el("td", {}, `${h.service} ${h.instance}`), el("td", {}, `${num(h.gauges.latency_p50_ms, 0)} / ${num(h.gauges.latency_p99_ms, 0)}`),
        el("td", {}, num(h.gauges.lag_ms, 0)),
        el("td", {}, String(Object.entries(h.counters).filter(([k]) => k.includes("drop")).reduce((a, [, v]) => a + v, 0))),
        el("td", {}, h.stale ? badge("stale", "silent") : badge("live", "ok")))));
    }
  });
  async function refresh() {
    const sessions = await api("/api/console");
    document.getElementById("summary").textContent = `${sessions.length} live or waiting sessions`;
    for (const s of sessions) {
      if (tiles[s.sid]) continue;
      const box = el("div");
      const tile = { score: el("span", { class: "big" }, s.last && s.last.score !== null ? num(s.last.score) : "-"),
        task: el("span", {}, s.last ? s.last.task : "no task"), note: el("span", { class: "small muted" }),
        state: el("span", {}, badge(s.stale ? "stale" : "live", s.stale ? "stale" : s.state)), data: [[], []], last: 0, session: s };
      const card = el("div", { class: "card tile", "data-sid": s.sid }, el("h3", {}, el("a", { href: `/sessions/${s.id}` }, s.patient_name), " ", tile.state),
        el("p", { class: "small muted" }, s.protocol, " · ", tile.task), tile.score, " ", tile.note, box);
      document.getElementById("tiles").append(card);
      tile.plot = new uPlot({ width: 280, height: 90, legend: { show: false }, scales: { x: { time: true }, y: { range: [me.protocols[s.protocol].scale.min, me.protocols[s.protocol].scale.max] } },
        axes: [{ show: false }, {}], series: [{}, { stroke: "#2f6db5" }] }, tile.data, box);
      tiles[s.sid] = tile;
      live.remember(s.id, s.sid); live.watch(s.id);
    }
  }
  setInterval(() => {
    for (const t of Object.values(tiles)) {
      const stale = t.session.state === "live" && (!t.last || Date.now() - t.last > me.stale_after_s * 1000);
      t.state.replaceChildren(badge(stale ? "stale" : "live", stale ? "stale" : t.session.state));
    }
  }, 1000);
  await refresh();
  setInterval(() => refresh().catch(() => {}), 10000);
})();
