"""The load generator: simulated users over HTTP and WebSocket against a real stack (see driver.py)."""
