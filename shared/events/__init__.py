"""Events: envelope, catalogue, registry, CloudEvents mapping, partitions, deterministic ids.

Deliberately empty: importing `shared.events` must stay cheap (the relay, the CLI and tests import
parts of it). The catalogue is registered on first use of `registry` (see registry.py), or by
importing `shared.events.catalogue`.
"""
