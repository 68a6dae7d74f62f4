"""Stack settings: the defaults table, the typed config model, its loader and the naming helper."""
