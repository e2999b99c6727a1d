"""Workspaces: the tenant every row belongs to, its API keys and signing secrets, and its people:
users, their roles, their sign-in sessions, the audit log."""
