"""Question rewrite: make a question stand alone (TREC CAsT) or clean a corrupted one (seeded noise)."""
