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
  disconnectedCallback() { this.ws?.close(); }
  fail(e) { this.shadowRoot.querySelector("ul").innerHTML = `<li class="alert" role="alert">${esc(e.message)}</li>`; }
  async load() {
    const theme = await api(this, "/v1/theme").catch(() => null);
    if (theme) {
      applyTheme(this, theme);
      this.shadowRoot.querySelector(".sacred").textContent = theme.sacred.proof_signature;
    }
    this.render(await api(this, "/v1/dacs"));
    this.ws = await stream(this, "/v1/streams/pins", (m) => m.type === "pins" && this.render(m.pins));
  }
  render(dacs) {
    this.shadowRoot.querySelector("ul").innerHTML = dacs
      .map((d) => {
        const alert = d.status !== "serving";
        return `<li role="listitem" data-dac="${esc(d.dac_id)}" data-status="${esc(d.status)}">
          <strong>${esc(d.dac_id)}</strong> <span class="${alert ? "alert" : ""}" ${alert ? 'role="alert"' : ""}>${esc(d.status)}</span>
          <small>${esc(d.validated_on || "")}</small></li>`;
      })
      .join("");
  }
}
customElements.define("iv-capsule-pin", IvCapsulePin);
