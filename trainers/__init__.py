"""Thin trainers on TRL and PEFT that write checkpoints with lineage manifests.

This folder is installed as ``ftbench.trainers`` and loads only under that name: imported as ``trainers`` (the
repository root on ``sys.path``) one file would load as two modules, and errors raised by one would not be caught as
the other's.
"""

if __name__ != "ftbench.trainers":
    raise SystemExit(f"{__name__} is ftbench's code: import it as ftbench.trainers (or use `from ftbench import ...`)")
