"""How to reach each kind of target: guarded, read-only clients and their fixtures."""
