"""``python -m diffusion_vas``: the command line (`commands`)."""

import sys

from .commands import main

sys.exit(main())
