"""The data services, each a hardened container on the internal backend network
with a named volume (service.py is their shared shape)."""
