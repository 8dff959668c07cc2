"""netinspect's command line as one torchrun worker, for the tests.

``RANK_ENV_<rank>=NAME=VALUE`` sets a variable on that rank only; each rank's exit code is written
to ``$EXIT_DIR/<rank>`` (the launcher reports none once it was interrupted itself).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

rank = os.environ["RANK"]
extra = os.environ.get(f"RANK_ENV_{rank}")
if extra:
    name, value = extra.split("=", 1)
    os.environ[name] = value
_exit = os._exit


def _record(code: int) -> None:
    Path(os.environ["EXIT_DIR"], rank).write_text(str(code))
    _exit(code)


os._exit = _record  # type: ignore[assignment]  # main() leaves through os._exit

from netinspect.cli import main  # noqa: E402

sys.argv = ["netinspect", *sys.argv[1:]]
main()
