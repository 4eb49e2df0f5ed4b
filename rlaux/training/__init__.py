"""Training loops and what they share (run folder, evaluation, checkpoints)."""
