"""Entry point of the frozen bundle: the same CLI as the `radstation` console script."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # the engine worker is a spawned process
    from app.cli import main

    sys.exit(main())
