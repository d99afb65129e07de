import { api, applyTheme, BASE_CSS, esc } from "./client.js";

// <iv-dac-explorer filter allow-deploy>: the client's DACs with their measured scores (each
// naming its data: simulated client room or real captures of the client's device), evidence,
// version and status. `filter`: only DACs whose id contains it. With `allow-deploy`, a button
// per DAC asks the gateway to launch its lifecycle run in Dagster and follows the run's
// progress (steps succeeded of the plan) until it ends.
const pct = (x) => (x == null ? "–" : `${(100 * Number(x)).toFixed(1)}%`);
const DONE = new Set(["SUCCESS", "FAILURE", "CANCELED"]);

export class IvDacExplorer extends HTMLElement {
  connectedCallback() {
    this.attachShadow({ mode: "open" });
    this.shadowRoot.innerHTML = `<style>${BASE_CSS}
      :host { padding: var(--iv-gap, 12px); border: 1px solid var(--iv-primary); }
      table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 4px 6px; vertical-align: top; }
      tbody tr { border-top: 1px solid #ddd; } .sim { font-style: italic; } progress { width: 6em; }
      button[disabled] { opacity: 0.6; cursor: default; }</style>
      <section role="region" aria-labelledby="t"><h2 id="t" part="title">Your DACs</h2>
      <table><caption class="sacred">Scores are measured at each DAC's decision threshold; each names its data.</caption>
      <thead><tr><th scope="col">DAC</th><th scope="col">Version</th><th scope="col">Evidence</th>
      <th scope="col">Scores</th><th scope="col">Status</th>${this.hasAttribute("allow-deploy") ? '<th scope="col">Lifecycle run</th>' : ""}</tr></thead>
      <tbody></tbody></table><p role="status" aria-live="polite" class="live"></p></section>`;
    this.runs = {};
    this.load().catch((e) => this.say(e.message, true));
  }
  disconnectedCallback() { clearTimeout(this.timer); }
  say(text, alert = false) {
    const p = this.shadowRoot.querySelector(".live");
    p.textContent = text;
    p.className = alert ? "live alert" : "live";
  }
  async load() {
    const theme = await api(this, "/v1/theme").catch(() => null);
    if (theme) applyTheme(this, theme);
    const f = this.getAttribute("filter") || "";
    this.dacs = (await api(this, "/v1/dacs")).filter((d) => d.dac_id.includes(f));
    this.render();
    this.dataset.ready = "true";
  }
  render() {
    const deploy = this.hasAttribute("allow-deploy");
    this.shadowRoot.querySelector("tbody").innerHTML = this.dacs
      .map((d) => {
        const scores = (d.scores || [])
          .map((s) => `<li class="${s.data.startsWith("simulated") ? "sim" : ""}">accuracy ${pct(s.accuracy)},
              fall recall ${pct(s.fall_recall)}, false alarms ${pct(s.fall_false_alarm_rate)}
              <small>(${esc(s.data)}, ${esc(s.n)} windows)</small></li>`)
          .join("");
        const evidence = d.validated_on === "simulation_only" ? "simulation only" : esc(d.validated_on || "none yet");
        const run = this.runs[d.dac_id];
        const cell = deploy
          ? `<td data-run-status="${esc(run?.status || "")}">
               <button data-launch="${esc(d.dac_id)}" aria-label="Run lifecycle of ${esc(d.dac_id)}"
                 ${run && !DONE.has(run.status) ? "disabled" : ""}>Run lifecycle</button>
               ${run ? this.progress(run) : ""}</td>`
          : "";
        return `<tr data-dac="${esc(d.dac_id)}"><th scope="row">${esc(d.dac_id)}</th><td>${esc(d.version || "–")}</td>
          <td>${evidence}</td><td><ul>${scores || "<li>not evaluated yet</li>"}</ul></td><td>${esc(d.status)}</td>${cell}</tr>`;
      })
      .join("");
    this.shadowRoot.querySelectorAll("button[data-launch]").forEach((b) =>
      b.addEventListener("click", () => this.launch(b.dataset.launch)),
    );
  }
  progress(run) {
    const total = run.steps_total || 0;
    const done = run.steps_succeeded || 0;
    const bar = total
      ? `<progress max="${total}" value="${done}" aria-label="steps succeeded" aria-valuenow="${done}"
           aria-valuemax="${total}"></progress>`
      : "";
    return `<span class="run">${bar} <span class="${run.status === "FAILURE" ? "alert" : ""}">${esc(run.status)}</span>
      ${total ? `${done} of ${total} steps` : ""}${run.error ? ` – ${esc(run.error)}` : ""}</span>`;
  }
  async launch(dac) {
    this.runs[dac] = { status: "LAUNCHING" };
    this.render();
    try {
      const r = await api(this, `/v1/dacs/${encodeURIComponent(dac)}/runs`, { method: "POST" });
      this.runs[dac] = { run_id: r.run_id, status: r.status };
      this.say(`Lifecycle run of ${dac} launched (${r.run_id}).`);
      this.render();
      this.follow(dac);
    } catch (e) {
      this.runs[dac] = { status: "NOT LAUNCHED", error: e.message };
      this.say(`${dac}: ${e.message}`, true);
      this.render();
    }
  }
  async follow(dac) {
    const run = this.runs[dac];
    try {
      const r = await api(this, `/v1/dacs/${encodeURIComponent(dac)}/runs/${run.run_id}`);
      const changed = r.status !== run.status || r.steps_succeeded !== run.steps_succeeded;
      this.runs[dac] = r;
      if (changed) this.render();
      if (DONE.has(r.status)) {
        this.say(`Lifecycle run of ${dac}: ${r.status}.`, r.status !== "SUCCESS");
        this.dispatchEvent(new CustomEvent("iv-run-finished", { detail: r, bubbles: true, composed: true }));
        this.dacs = (await api(this, "/v1/dacs")).filter((d) => d.dac_id.includes(this.getAttribute("filter") || ""));
        this.render();
        return;
      }
    } catch (e) {
      this.say(`${dac}: ${e.message}; retrying`, true);
    }
    this.timer = setTimeout(() => this.follow(dac), Number(this.getAttribute("poll-ms") || 2000));
  }
}
customElements.define("iv-dac-explorer", IvDacExplorer);
