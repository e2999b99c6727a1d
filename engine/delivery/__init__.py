"""Delivery: channel ports, the message state machine, routing and policies (consent, caps,
quiet hours), rendering the outgoing message, dispatch and hand-over, channel health
(the circuit breaker), in-doubt sends and per-workspace delivery settings."""
