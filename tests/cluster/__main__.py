"""``python -m tests.cluster up [DIR]`` prints the cluster's directory and luzia config;
``python -m tests.cluster down DIR`` takes it down and leaves nothing behind."""

from __future__ import annotations

import sys
from pathlib import Path

from tests import cluster


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in ("up", "down") or (argv[0] == "down" and len(argv) != 2):
        print("usage: python -m tests.cluster up [DIR] | down DIR", file=sys.stderr)
        return 2
    if argv[0] == "down":
        cluster.stop_dir(Path(argv[1]))
        return 0
    made = cluster.start(Path(argv[1]) if len(argv) > 1 else None)
    print(made.base)
    print(made.config_toml(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
