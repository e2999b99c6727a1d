"""Keeping it running: the sweeper that re-hands overdue work, and operational metrics."""
