"""Use cases. Each takes an open session and `now`; the caller commits."""
