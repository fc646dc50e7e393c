"""Run by tests: one of the inference tools in this process, then its exit status and peak memory (the kernel's
high-water marks of this process and of its largest worker process) as JSON.

  python peak_run.py OUT.json predict|validate ARGS...
"""
from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":
    out, tool, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    from mlp_zoo.tools import predict, validate

    status = {"predict": predict, "validate": validate}[tool].main(args)
    Path(out).write_text(json.dumps({"status": status,
                                     "self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                     "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
