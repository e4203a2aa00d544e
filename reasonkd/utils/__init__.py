"""Small shared helpers (atomic file writes, threads, hashing)."""
