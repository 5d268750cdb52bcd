"""ftbench's lm-evaluation-harness tasks: one folder per task, an lm-eval YAML and a typed scoring module.

This folder is installed as ``ftbench.tasks`` and loads only under that name: imported as ``tasks`` (the
repository root on ``sys.path``) one file would load as two modules, and errors raised by one would not be caught as
the other's.
"""

if __name__ != "ftbench.tasks":
    raise SystemExit(f"{__name__} is ftbench's code: import it as ftbench.tasks (or use `from ftbench import ...`)")
