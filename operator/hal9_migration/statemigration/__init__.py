"""State migration: copy neuron state from the flat store to the hierarchical store (DESIGN §5)."""
