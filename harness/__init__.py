"""ftbench harness: specs, checkpoint variants, lm-eval runs, stored results, statistics, gate, CLI."""
