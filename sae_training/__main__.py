"""``python -m sae_training [options]``: the ``radinterp train`` command, for launchers
(``torchrun --nproc_per_node N -m sae_training ...``, ``accelerate launch -m sae_training ...``)."""

import logging
import os

from radinterp.cli import run_standalone
from sae_training.cli import train_command


def main() -> None:
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    run_standalone(train_command)


if __name__ == "__main__":
    main()
