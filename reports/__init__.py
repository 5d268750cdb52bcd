"""ftbench reports: rendered from stored results only; no report code runs a model.

This folder is installed as ``ftbench.reports`` and loads only under that name: imported as ``reports`` (the
repository root on ``sys.path``) one file would load as two modules, and errors raised by one would not be caught as
the other's.
"""

if __name__ != "ftbench.reports":
    raise SystemExit(f"{__name__} is ftbench's code: import it as ftbench.reports (or use `from ftbench import ...`)")
