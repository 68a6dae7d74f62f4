"""One ComponentResource per service or concern; `__main__.py` wires them together."""
