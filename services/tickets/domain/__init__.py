"""The support desk's domain (pure, no I/O): tickets, assignment, SLA clocks, the support contact."""
