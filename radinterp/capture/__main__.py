"""``python -m radinterp.capture ...`` (e.g. under torchrun): same options as ``radinterp capture``."""

import logging

from radinterp.capture.cli import capture_command
from radinterp.cli import run_standalone

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_standalone(capture_command)
