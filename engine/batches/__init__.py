"""Work done in batches of ids: a poison item is isolated as a dead letter so that the
others go through."""
