"""The leakage audit: fingerprints of training rows, matched against evaluation items, and membership statistics."""
