"""``ftbench view``: a local, read-only web viewer over the results store, and its static export."""
