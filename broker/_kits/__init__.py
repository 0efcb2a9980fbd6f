"""Leaf helpers: each module here imports nothing of the broker, so any layer (and the simulator) may use it."""
