"""Perplexity of held-out reference text (UltraFeedback chosen responses) by rolling log-likelihood."""
