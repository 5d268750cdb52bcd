"""ftbench harness: specs, checkpoint variants, lm-eval runs, stored results, statistics, gate, CLI.

This folder is installed as ``ftbench.harness`` and loads only under that name: imported as ``harness`` (the
repository root on ``sys.path``) one file would load as two modules, and errors raised by one would not be caught as
the other's.
"""

if __name__ != "ftbench.harness":
    raise SystemExit(f"{__name__} is ftbench's code: import it as ftbench.harness (or use `from ftbench import ...`)")
