"""Helpers shared by the relay, crash and stack-flow tests (imported as `helpers.*`; the scripts in
this folder also run as child processes that a test kills with SIGKILL)."""
