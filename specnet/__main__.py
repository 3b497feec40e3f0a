"""`python -m specnet ...` runs the command line (also under `torchrun -m specnet train SPEC`)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main(prog_name="specnet")
