// The gateway client every component uses: where the gateway is and the client's key come
// from attributes (gateway, api-key) or the page's <meta name="iv-gateway"> / <meta name="iv-key">.
export function config(el) {
  const meta = (n) => document.querySelector(`meta[name="${n}"]`)?.content;
  return {
    url: (el.getAttribute("gateway") || meta("iv-gateway") || "").replace(/\/$/, ""),
    key: el.getAttribute("api-key") || meta("iv-key") || "",
  };
}

export async function api(el, path, init = {}) {
  const { url, key } = config(el);
  const r = await fetch(url + path, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${key}` } });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

export async function stream(el, path, onMessage) {
  const { token } = await api(el, "/v1/stream-token", { method: "POST" });
  const { url } = config(el);
  const base = (url || location.origin).replace(/^http/, "ws");
  const ws = new WebSocket(`${base}${path}?token=${encodeURIComponent(token)}`);
  ws.onmessage = (e) => onMessage(JSON.parse(e.data));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`${path}: the stream did not open`));
  });
  return ws;
}

// flexible tokens arrive as CSS custom properties; nothing else of a theme reaches the DOM
export function applyTheme(host, theme) {
  for (const [k, v] of Object.entries(theme?.css || {})) {
    if (/^--iv-[a-z-]+$/.test(k)) host.style.setProperty(k, v);
  }
}

export const esc = (s) =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

export const BASE_CSS = `
  :host { font-family: var(--iv-font, sans-serif); color: var(--iv-text, #1b1b1b);
          background: var(--iv-background, #fff); display: block; border-radius: var(--iv-radius, 8px); }
  .sacred { font-size: 0.75em; opacity: 0.8; }
  button { border-radius: var(--iv-button-radius, 8px); background: var(--iv-primary, #0b6e4f); color: #fff;
           border: 0; padding: 4px 10px; cursor: pointer; }
  button:focus-visible { outline: 2px solid var(--iv-accent, #f2a541); }
  .alert { color: var(--iv-alert, #c0392b); font-weight: bold; }
`;
