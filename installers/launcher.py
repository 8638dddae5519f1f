"""Entry point of the frozen bundle: the same CLI as the `radstation` console script.

In a bundle `sys.executable` is this program, not a Python interpreter, so code that starts a helper
process the usual way (`[sys.executable, "-m", "engines.worker"]`, as engines.worker.client does
for the app) lands here: `-m MODULE ARGS...` runs that bundled module as `__main__`, exactly
like `python -m`. Only modules frozen into the bundle can run, so this opens nothing new to the user.
"""

import multiprocessing
import runpy
import sys


def _run_module(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("radstation: -m needs a module name")
    module = argv[1]
    sys.argv = [module, *argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    multiprocessing.freeze_support()  # harmless unless someone uses multiprocessing; then it is required
    if len(sys.argv) > 1 and sys.argv[1] == "-m":
        _run_module(sys.argv[1:])
        sys.exit(0)
    from app.cli import main

    sys.exit(main())
