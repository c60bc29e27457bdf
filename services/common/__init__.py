"""What every service process shares: signal handling and graceful stop, health endpoints, start-up wiring."""
