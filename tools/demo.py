#!/usr/bin/env python
"""`python tools/demo.py ...` from a clone = `mlp-zoo demo ...` (mlp_zoo/tools/demo.py)."""
if __name__ == "__main__":  # not again in a spawned worker, which imports this file as __mp_main__
    import _clone

    _clone.run("demo")
