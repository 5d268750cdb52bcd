"""Countdown: reach a target with + - * / using each given number once (TinyZero's rule reward)."""
