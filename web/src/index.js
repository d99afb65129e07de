// The Capsule Pin web components (issue #17); <iv-dac-explorer> is still to come.
export { IvCapsulePin } from "./capsule-pin.js";
export { IvSensingDashboard } from "./dashboard.js";
export { IvPinCard } from "./pin-card.js";
