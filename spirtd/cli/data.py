"""`spirtd data`: the training datasets.

    spirtd data list
        the datasets, one a line: name, whether it needs files, summary
    spirtd data download mnist|fashion_mnist|cifar10 --dir DIR
        fetches the official files into DIR (made if missing; give each
        dataset its own), checks their published MD5s and writes them
        atomically; files already there and intact are kept
    spirtd data check NAME [--dir DIR] [--seed N] [--option KEY=VALUE ...]
        loads the dataset as a job would and prints its split sizes, input
        shape, classes and fingerprint

Exit status: 0 done, 1 failed (a download failed, or check found the files
missing or malformed), 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from spirtd.cli import EXIT_FAILED, EXIT_OK, reporting_os_errors
from spirtd.errors import ConfigError, DatasetError
from spirtd.ml.datasets import DATASETS, DatasetSpec, load_dataset
from spirtd.ml.datasets.download import PLANS, download

def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser(
        "data", help="the training datasets: list, download, check",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    actions = data.add_subparsers(dest="action", metavar="ACTION", required=True)

    show = actions.add_parser("list", help="list the datasets")
    show.set_defaults(handler=run_list)

    fetch = actions.add_parser("download", help="fetch a dataset's official files")
    fetch.add_argument("name", choices=list(PLANS))
    fetch.add_argument("--dir", type=Path, required=True, help="the folder the files go in")
    fetch.set_defaults(handler=reporting_os_errors(run_download))

    check = actions.add_parser("check", help="load a dataset and print what it holds")
    check.add_argument("name", choices=list(DATASETS))
    check.add_argument("--dir", type=Path, help="the folder of its files (file datasets)")
    check.add_argument("--seed", type=int, default=0, help="the seed of the validation split")
    check.add_argument(
        "--option", "-o", action="append", default=[], metavar="KEY=VALUE",
        help="a dataset option; VALUE is read as JSON when it can be (0.2, true, [1, 8, 8])",
    )  # fmt: skip
    check.set_defaults(handler=reporting_os_errors(run_check))


def run_list(args: argparse.Namespace) -> int:
    for name, found in DATASETS.items():
        where = "files" if found.needs_path else "built in"
        print(f"{name}\t{where}\t{found.summary}")
    return EXIT_OK


def run_download(args: argparse.Namespace) -> int:
    download(args.name, args.dir, report=print)
    print(f"{args.name} is in {args.dir}; check it with: spirtd data check {args.name} --dir {args.dir}")
    return EXIT_OK


def parse_option(text: str) -> tuple[str, Any]:
    """KEY=VALUE, VALUE as JSON when it parses, else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--option must be KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def run_check(args: argparse.Namespace) -> int:
    spec = DatasetSpec(args.name, args.dir, dict(parse_option(o) for o in args.option))
    try:
        data = load_dataset(spec, args.seed)
    except DatasetError as exc:
        print(f"spirtd data: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"{args.name}: train {len(data.train_y)}, val {len(data.val_y)}, test {len(data.test_y)}; "
        f"input {data.input_shape}, {data.num_classes} classes; fingerprint {data.fingerprint}"
    )
    return EXIT_OK
