import { api, applyTheme, BASE_CSS, esc, stream } from "./client.js";

// <iv-capsule-pin client-id theme position>: the floating widget, one entry per pin with its
// status, health and alert state; live through the pins stream.
export class IvCapsulePin extends HTMLElement {
  connectedCallback() {
    this.attachShadow({ mode: "open" });
    const pos = this.getAttribute("position") || "bottom-right";
    this.shadowRoot.innerHTML = `<style>${BASE_CSS}
      :host { position: fixed; ${pos.includes("bottom") ? "bottom" : "top"}: 16px;
              ${pos.includes("left") ? "left" : "right"}: 16px; padding: var(--iv-gap, 12px);
              box-shadow: 0 2px 8px rgba(0,0,0,.2); min-width: 240px; border-top: 4px solid var(--iv-primary); }
      ul { list-style: none; margin: 0; padding: 0; } li { margin: 4px 0; }</style>
      <section role="region" aria-label="Capsule pins"><h2 part="title">Capsule pins</h2>
      <ul role="list"></ul><p class="sacred" part="proof-signature"></p></section>`;
    this.load().catch((e) => this.fail(e));
  }
  disconnectedCallback() { this.ws?.close(); this.dws?.close(); }
  fail(e) { this.shadowRoot.querySelector("ul").innerHTML = `<li class="alert" role="alert">${esc(e.message)}</li>`; }
  async load() {
    const theme = await api(this, "/v1/theme").catch(() => null);
    if (theme) {
      applyTheme(this, theme);
      this.shadowRoot.querySelector(".sacred").textContent = theme.sacred.proof_signature;
    }
    this.render(await api(this, "/v1/dacs"));
    this.ws = await stream(this, "/v1/streams/pins", (m) => m.type === "pins" && this.render(m.pins));
    this.alerts = {};
    this.dws = await stream(this, "/v1/streams/detections", (m) => {
      if (m.type === "detection" && m.label === "fall") {
        this.alerts[m.dac_id] = m;
        this.render(this.last || []);
      }
    }).catch(() => null); // no detection stream configured: pins only
  }
  async answer(dac, wasFall) {
    const d = this.alerts[dac];
    if (!d) return;
    const body = { dac_id: dac, device_id: d.device_id, seq: d.seq, timestamp_us: d.timestamp_us, label: d.label, was_fall: wasFall };
    if (d.window_id) body.window_id = d.window_id; // the capsule's logged window: the label reaches its feedback
    await api(this, "/v1/feedback", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    delete this.alerts[dac];
    this.render(this.last || []);
    this.dispatchEvent(new CustomEvent("iv-feedback", { detail: body, bubbles: true, composed: true }));
  }
  render(dacs) {
    const key = JSON.stringify([dacs, Object.keys(this.alerts || {})]);
    if (key === this.rendered) return; // unchanged: keep the DOM (and a button being clicked)
    this.rendered = key;
    this.last = dacs;
    const ul = this.shadowRoot.querySelector("ul");
    ul.innerHTML = dacs
      .map((d) => {
        const down = d.status !== "serving";
        const fall = this.alerts?.[d.dac_id];
        const ask = fall
          ? `<div class="alert" role="alert" data-alert="fall">Fall detected (${Math.round(100 * fall.confidence)}%). Was this a fall?
               <button data-answer="yes" aria-label="Yes, it was a fall">Yes</button>
               <button data-answer="no" aria-label="No, it was not a fall">No</button></div>`
          : "";
        return `<li role="listitem" data-dac="${esc(d.dac_id)}" data-status="${esc(d.status)}">
          <strong>${esc(d.dac_id)}</strong> <span class="${down ? "alert" : ""}" ${down ? 'role="alert"' : ""}>${esc(d.status)}</span>
          <small>${esc(d.validated_on || "")}</small>${ask}</li>`;
      })
      .join("");
    ul.querySelectorAll("button[data-answer]").forEach((b) =>
      b.addEventListener("click", () => this.answer(b.closest("li").dataset.dac, b.dataset.answer === "yes")),
    );
  }
}
customElements.define("iv-capsule-pin", IvCapsulePin);
