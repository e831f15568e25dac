"use strict";
(async () => {
  const { api, el, when } = feqa;
  const me = await feqa.start();
  if (me.user.role !== "admin") { document.querySelector("main").replaceChildren(el("p", { class: "message" }, "Only admins see this page.")); return; }
  async function load() {
    const clinics = await api("/api/admin/clinics");
    const names = Object.fromEntries(clinics.map((c) => [c.id, c.name]));
    document.getElementById("clinics").replaceChildren(...clinics.map((c) => el("li", {}, c.name)));
    document.getElementById("clinic-select").replaceChildren(el("option", { value: "" }, "(none)"), ...clinics.map((c) => el("option", { value: c.id }, c.name)));
    const users = await api("/api/admin/users");
    document.querySelector("#users tbody").replaceChildren(...users.map((u) => el("tr", {}, el("td", {}, u.username), el("td", {}, u.full_name),
      el("td", {}, u.role), el("td", {}, names[u.clinic_id] || "-"))));
    const audit = await api("/api/admin/audit?limit=200");
    document.querySelector("#audit tbody").replaceChildren(...audit.map((a) => el("tr", {}, el("td", { class: "small" }, when(a.ts)),
      el("td", {}, a.user), el("td", {}, a.action), el("td", {}, `${a.target_type} ${a.target_id}`), el("td", { class: "small" }, a.ip), el("td", {}, a.outcome))));
  }
  document.getElementById("add-clinic").addEventListener("submit", async (ev) => {
    ev.preventDefault(); await api("/api/admin/clinics", { method: "POST", body: { name: new FormData(ev.target).get("name") } }); ev.target.reset(); load();
  });
  document.getElementById("add-user").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      const u = await api("/api/admin/users", { method: "POST", body: { username: f.get("username"), full_name: f.get("full_name"), role: f.get("role"), clinic_id: f.get("clinic_id") ? Number(f.get("clinic_id")) : null } });
      document.getElementById("user-message").textContent = `Created ${u.username}. Password (shown only now): ${u.password}`;
      ev.target.reset(); load();
    } catch (e) { document.getElementById("user-message").textContent = e.message; }
  });
  await load();
})();
