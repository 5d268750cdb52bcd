"""ftbench reports: rendered from stored results only; no report code runs a model."""
