"use strict";
(async () => {
  const { api, el, when, badge } = feqa;
  await feqa.start();
  async function load(q = "") {
    const rows = await api("/api/patients?q=" + encodeURIComponent(q));
    const body = document.querySelector("#patients tbody");
    body.replaceChildren(...rows.map((p) => el("tr", {}, el("td", {}, el("a", { href: `/patients/${p.id}` }, p.display_name)),
      el("td", {}, p.mrn), el("td", {}, p.diagnosis), el("td", {}, when(p.last_session_ts)))));
  }
  async function sessions() {
    for (const which of ["live", "past"]) {
      const rows = await api(`/api/sessions?which=${which}&limit=20`);
      document.querySelector(`#${which} tbody`).replaceChildren(...rows.map((s) => el("tr", {},
        el("td", {}, el("a", { href: `/sessions/${s.id}` }, s.patient_name)), el("td", {}, s.protocol),
        el("td", {}, badge(s.state === "ended" ? "ended" : "live", s.state)), el("td", { class: "small muted" }, when(s.created_ts)))));
    }
  }
  document.getElementById("search").addEventListener("input", (ev) => load(ev.target.value));
  document.getElementById("add-patient").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = { display_name: f.get("display_name"), mrn: f.get("mrn"), diagnosis: f.get("diagnosis") || "",
      birth_year: f.get("birth_year") ? Number(f.get("birth_year")) : null };
    try { const p = await api("/api/patients", { method: "POST", body }); location.href = `/patients/${p.id}`; }
    catch (e) { document.getElementById("add-message").textContent = e.message; }
  });
  await load(); await sessions();
})();
