"""ftbench's lm-evaluation-harness tasks: one folder per task, an lm-eval YAML and a typed scoring module."""
