"""AI Shield: policy checks on a DAC package and the decision engine that approves it."""
