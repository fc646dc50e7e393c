"""``python -m mlp_zoo.jittor_support.prepare``: provide oneDNN, compile Jittor's core once, and prove both work."""
from __future__ import annotations

import sys
import time

from mlp_zoo.jittor_support.compile_progress import reporting


def main() -> int:
    start = time.time()
    print("preparing Jittor (the first time compiles its core once: 2-5 minutes on 2 cores) ...", flush=True)
    try:
        with reporting("compiling Jittor's core"):
            from mlp_zoo.jittor_support.runtime import jt
    except Exception as e:  # the runtime's own error says how to fix it
        print(f"jittor set-up failed: {e}", file=sys.stderr)
        return 1
    from jittor import compile_extern, nn

    import numpy as np

    with reporting("compiling Jittor's oneDNN conv"):
        x = jt.array(np.ones((1, 4, 8, 8), np.float32))
        nn.Conv2d(4, 4, 3, padding=1)(x).sync()  # compiles and runs a oneDNN conv
    onednn = compile_extern.mkl_ops is not None
    print(f"jittor {jt.__version__} ready in {time.time() - start:.0f} s; oneDNN: "
          f"{'yes' if onednn else 'NO (slow path accepted by MLPZOO_ALLOW_SLOW_JITTOR=1)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
