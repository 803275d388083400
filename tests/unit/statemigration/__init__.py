"""Unit tests of the state migration engine (DESIGN §5): pure, no store, no cluster."""
