import { api, applyTheme, BASE_CSS, esc, stream } from "./client.js";

// <iv-sensing-dashboard data-source="detections" show-realtime show-energy-graph>: per room
// (DAC) the newest detection's class probabilities, a timeline of detections, and the DAC's
// energy history from the Energy Atlas.
const MAX_TIMELINE = 50;

export class IvSensingDashboard extends HTMLElement {
  connectedCallback() {
    this.attachShadow({ mode: "open" });
    this.shadowRoot.innerHTML = `<style>${BASE_CSS}
      :host { padding: var(--iv-gap, 12px); } .rooms { display: grid; gap: var(--iv-gap, 12px);
      grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); }
      .room { border: 1px solid var(--iv-primary); border-radius: var(--iv-radius); padding: 8px; }
      .log { max-height: 160px; overflow: auto; font-size: 0.85em; } .fall { color: var(--iv-alert); font-weight: bold; }
      svg { width: 100%; height: 60px; } polyline { fill: none; stroke: var(--iv-primary); stroke-width: 2; }</style>
      <section role="region" aria-label="Sensing dashboard"><h2>Sensing</h2><div class="rooms"></div></section>`;
    this.rooms = {};
    this.load().catch((e) => (this.shadowRoot.querySelector(".rooms").textContent = e.message));
  }
  disconnectedCallback() { this.ws?.close(); }
  async load() {
    const theme = await api(this, "/v1/theme").catch(() => null);
    if (theme) applyTheme(this, theme);
    for (const d of await api(this, "/v1/dacs")) this.room(d.dac_id, d.validated_on);
    if (this.hasAttribute("show-energy-graph")) {
      for (const id of Object.keys(this.rooms)) this.energy(id).catch(() => null);
    }
    if (this.hasAttribute("show-realtime")) {
      this.ws = await stream(this, "/v1/streams/detections", (m) => m.type === "detection" && this.detection(m));
      this.dataset.ready = "true";
    }
  }
  room(id, evidence) {
    const el = document.createElement("article");
    el.className = "room";
    el.dataset.dac = id;
    el.innerHTML = `<h3>${esc(id)}</h3><small>evidence: ${esc(evidence || "?")}</small>
      <div class="probs" role="group" aria-label="class probabilities of the newest detection"></div>
      <div class="log" role="log" aria-label="detections, newest first" tabindex="0"><ol class="timeline"></ol></div><div class="energy"></div>`;
    this.shadowRoot.querySelector(".rooms").append(el);
    this.rooms[id] = el;
  }
  detection(m) {
    const el = this.rooms[m.dac_id];
    if (!el) return;
    el.querySelector(".probs").innerHTML = Object.entries(m.probabilities)
      .map(([k, v]) => `<div>${esc(k)} <span role="meter" aria-label="P(${esc(k)})" aria-valuemin="0" aria-valuemax="1"
           aria-valuenow="${Number(v)}"><meter min="0" max="1" value="${Number(v)}"></meter></span> ${Math.round(100 * v)}%</div>`)
      .join("");
    const li = document.createElement("li");
    li.className = m.label === "fall" ? "fall" : "";
    li.textContent = `${new Date().toLocaleTimeString()} ${m.label} (${Math.round(100 * m.confidence)}%) seq ${m.seq}`;
    const ol = el.querySelector(".timeline");
    ol.prepend(li);
    while (ol.children.length > MAX_TIMELINE) ol.lastChild.remove();
  }
  async energy(id) {
    const e = await api(this, `/v1/dacs/${encodeURIComponent(id)}/energy`);
    const pts = e.history.length ? e.history : e.lifecycle ? [e.lifecycle] : [];
    const el = this.rooms[id].querySelector(".energy");
    if (!pts.length) return (el.textContent = "no energy history yet");
    const max = Math.max(...pts.map((p) => p.E_state), 1);
    const poly = pts.map((p, i) => `${(100 * i) / Math.max(1, pts.length - 1)},${60 - (55 * p.E_state) / max}`).join(" ");
    el.innerHTML = `<svg viewBox="0 0 100 60" preserveAspectRatio="none" role="img"
      aria-label="energy per day, newest ${esc(pts.at(-1).E_state)} J"><polyline points="${poly}"/></svg>`;
  }
}
customElements.define("iv-sensing-dashboard", IvSensingDashboard);
