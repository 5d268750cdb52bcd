"""UltraFeedback: responses judged against a reference by a reward model or a pairwise LLM judge."""
