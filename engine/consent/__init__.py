"""The contact's own say: the preference center and subscription forms with double opt-in."""
