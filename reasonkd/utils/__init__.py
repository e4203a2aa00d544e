"""Shared helpers below every other layer: atomic writes and hashing (io), hardware and `auto` precision
(hardware), the sandbox that runs model-written code (sandbox)."""
