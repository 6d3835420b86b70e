"""``python -m diffusion_vas.commands`` (what ``accelerate launch -m diffusion_vas.commands`` runs)."""

import sys

from . import main

sys.exit(main())
