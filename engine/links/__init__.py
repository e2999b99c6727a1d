"""Signed links put in messages: unsubscribe, preferences, tracking, reviews, messenger deep links."""
