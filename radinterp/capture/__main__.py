"""``python -m radinterp.capture ...`` (e.g. under torchrun): same options as ``radinterp capture``."""

import logging

import typer

from radinterp.capture.cli import capture_command

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    typer.run(capture_command)
