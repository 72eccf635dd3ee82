"""``mmml-bench --nproc N`` runs this: PyTorch's own ``torchrun`` (``torch.distributed.run``)
with its arguments, exiting the way ``mmml-bench`` does instead of with torchrun's
tracebacks: the ranks' own exit code when one fails (rank 0 has printed the error already),
130 when interrupted."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(argv)
    except SignalException:
        print("interrupted", file=sys.stderr)
        return 130
    except ChildFailedError as exc:
        codes = sorted({f.exitcode for f in exc.failures.values()})
        if 2 in codes:  # a rank reported a run error (exit 2); the others followed it
            return 2
        print(f"mmml-bench: a training process failed (exit codes {codes})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
