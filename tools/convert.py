#!/usr/bin/env python
"""`python tools/convert.py ...` from a clone = `mlp-zoo convert ...` (mlp_zoo/tools/convert.py)."""
if __name__ == "__main__":  # not again in a spawned worker, which imports this file as __mp_main__
    import _clone

    _clone.run("convert")
