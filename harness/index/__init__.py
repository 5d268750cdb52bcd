"""The results store: an index over stored JSON records (SQLite beside the results, or PostgreSQL for a team)."""
