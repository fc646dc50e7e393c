"""``python -m mlp_zoo SUBCOMMAND ...`` = ``mlp-zoo SUBCOMMAND ...``."""
import sys

from mlp_zoo.cli import main

sys.exit(main())
