"""``python -m npcae ...`` is the same as the ``npcae`` command."""
import sys

from .cli import main

sys.exit(main())
