// The Capsule Pin web components (issue #17): more to come (sensing dashboard, DAC explorer).
export { IvCapsulePin } from "./capsule-pin.js";
export { IvPinCard } from "./pin-card.js";
