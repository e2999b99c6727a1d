"""RQ job entry points, queues, the scheduler, channel adapters and the CLI."""
