#!/usr/bin/env python
"""`python tools/crosscheck.py ...` from a clone = `mlp-zoo crosscheck ...` (mlp_zoo/tools/crosscheck.py)."""
if __name__ == "__main__":  # not again in a spawned worker, which imports this file as __mp_main__
    import _clone

    _clone.run("crosscheck")
