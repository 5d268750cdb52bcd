"""ARC (AI2 Reasoning Challenge): multiple-choice accuracy by log-likelihood, and a generative letter variant."""
