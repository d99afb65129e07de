// The Capsule Pin web components (issue #17).
export { IvCapsulePin } from "./capsule-pin.js";
export { IvSensingDashboard } from "./dashboard.js";
export { IvDacExplorer } from "./explorer.js";
export { IvPinCard } from "./pin-card.js";
