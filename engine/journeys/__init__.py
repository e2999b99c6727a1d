"""Journeys: the definition format, its steps, the pure interpreter, versions and publishing,
enrollment and runs, their effects, time-based triggers, the backtest and per-step stats."""
