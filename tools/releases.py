#!/usr/bin/env python
"""`python tools/releases.py ...` from a clone = `mlp-zoo releases ...` (mlp_zoo/tools/releases.py)."""
if __name__ == "__main__":  # not again in a spawned worker, which imports this file as __mp_main__
    import _clone

    _clone.run("releases")
