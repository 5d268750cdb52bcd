"""The levels ftbench's statistical claims default to; the gate's policy overrides ``ALPHA`` with its own.

Each claim printed at these levels has a calibration test (``tests/test_calibration.py``) and its measured value
in the README's statistics section (``benchmarks/calibration.py`` prints the table).
"""

ALPHA = 0.05
"""Two-sided level of the paired tests; the equivalence interval is the 1 − 2·ALPHA interval (two one-sided tests)."""
POWER = 0.8
"""Power of the minimum detectable effect ("detects ≥")."""
CONFIDENCE = 0.95
"""Coverage of the intervals a report prints."""
