"""The white-label gateway: per-client API keys, REST and WebSocket streams for the Capsule Pin
web components, with strict client isolation."""
