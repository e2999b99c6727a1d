"""The domain: definitions, interpreter, policies, services and the data model. No Flask, RQ or Redis here."""
