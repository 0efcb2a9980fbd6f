"""What the rest of the broker speaks: frozen dataclasses and enums, no I/O, nothing of any framework."""
