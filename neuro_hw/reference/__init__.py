"""Float64 reference simulator: the ground truth of what a circuit's math says (see engine.simulate)."""
