"""What comes back: delivery receipts, inbound replies and commands, opens and clicks,
review ratings, and the attribution of orders to messages."""
