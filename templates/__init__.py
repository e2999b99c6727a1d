"""Message templates (one folder each) and their sandboxed rendering."""
