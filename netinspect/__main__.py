"""``python -m netinspect``."""

from .cli import main

main()
