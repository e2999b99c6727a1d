"""Contacts: ingesting events, profiles and their timeline (the journal), order metrics,
loyalty tiers, phone numbers, and the rule for who may change a contact's consent."""
