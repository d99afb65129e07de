import { api, applyTheme, BASE_CSS, esc } from "./client.js";

// shown to 3 significant digits (the gauge's aria-valuenow keeps the measured value)
const fmt = (x) => (x == null || x === "" || Number.isNaN(Number(x)) ? "–" : esc(Number(Number(x).toPrecision(3))));

// <iv-pin-card pin-id show-thermodynamic-gauge show-blockchain-badge>: the DAC's measured
// energy signature as a gauge (E_state J, dE_dt W, S_state) and a badge that says whether the
// gateway verified the DAC's UTID against the ledger (verified / not verified / unknown).
export class IvPinCard extends HTMLElement {
  connectedCallback() {
    this.attachShadow({ mode: "open" });
    this.shadowRoot.innerHTML = `<style>${BASE_CSS}
      :host { padding: var(--iv-gap, 12px); border: 1px solid var(--iv-primary); }
      meter { width: 100%; } .badge { display: inline-block; padding: 2px 8px; border-radius: 999px; }
      .verified { background: #1e7e34; color: #fff; } .not-verified { background: #c0392b; color: #fff; }
      .unknown { background: #595959; color: #fff; }</style>
      <article aria-live="polite"><h2 part="title">…</h2><div class="gauge"></div><div class="badge-slot"></div></article>`;
    this.load().catch((e) => (this.shadowRoot.querySelector("h2").textContent = e.message));
  }
  async load() {
    const id = this.getAttribute("pin-id");
    const theme = await api(this, "/v1/theme").catch(() => null);
    if (theme) applyTheme(this, theme);
    const pin = await api(this, `/v1/pins/${encodeURIComponent(id)}`);
    this.shadowRoot.querySelector("h2").textContent = `${pin.title || id}`;
    // the measured signature from the Energy Atlas (the pin's copy only when the Atlas has none)
    const atlas = await api(this, `/v1/dacs/${encodeURIComponent(id)}/energy`).catch(() => null);
    const e = atlas?.lifecycle || pin.energy || {};
    if (this.hasAttribute("show-thermodynamic-gauge")) {
      const max = Math.max(1, Number(e.E_state || 0) * 2);
      this.shadowRoot.querySelector(".gauge").innerHTML = `
        <div role="meter" id="energy" aria-label="E_state, joules to produce this DAC" aria-valuemin="0"
             aria-valuemax="${max}" aria-valuenow="${Number(e.E_state)}">
          <meter min="0" max="${max}" value="${Number(e.E_state)}"></meter>
          E_state ${fmt(e.E_state)} J · dE/dt ${fmt(e.dE_dt)} W · S_state ${fmt(e.S_state)}</div>`;
    }
    if (this.hasAttribute("show-blockchain-badge")) {
      const proof = await api(this, `/v1/dacs/${encodeURIComponent(id)}/proof`).catch(() => ({ verified: null }));
      const state = proof.verified === true ? "verified" : proof.verified === false ? "not verified" : "unknown";
      const label = theme?.sacred?.blockchain_badge || "UTID on the ledger";
      this.shadowRoot.querySelector(".badge-slot").innerHTML = `<span class="badge ${state.replace(" ", "-")}"
        role="status" data-state="${state}" title="${esc((proof.problems || []).join("; "))}">${esc(label)}: ${state}</span>`;
    }
  }
}
customElements.define("iv-pin-card", IvPinCard);
