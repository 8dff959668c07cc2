"""Records → text for people or JSON for scripts. Nothing here builds a model.

``text`` holds the building blocks (and is the only importer of rich), ``model`` a built model's
outputs, ``checkpoints`` a checkpoint's and diff's.
"""

from .checkpoints import *  # noqa: F403
from .model import *  # noqa: F403
from .text import *  # noqa: F403
