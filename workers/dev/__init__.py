"""For development and the embedded mode: the SMTP sink, fake providers and the demo shop."""
