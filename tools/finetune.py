#!/usr/bin/env python
"""`python tools/finetune.py ...` from a clone = `mlp-zoo finetune ...` (mlp_zoo/tools/finetune.py)."""
if __name__ == "__main__":  # not again in a spawned worker, which imports this file as __mp_main__
    import _clone

    _clone.run("finetune")
