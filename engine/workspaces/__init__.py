"""Workspaces: the tenant every row belongs to, its API keys and signing secrets, and its people: users, roles, sign-in sessions, the audit log."""
