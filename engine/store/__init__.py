"""Storage: the database engine and sessions, the models (tables), migrations and SQL dialect helpers."""
