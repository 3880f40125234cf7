"""The `kdlab` command: `kdlab run PROTOCOL [options]`, options generated from the configs."""

from __future__ import annotations

import argparse
import sys

from kdlab import KdlabError, __version__
from kdlab.config import RunOptions, add_arguments, from_args, load_toml
from kdlab.protocols import every_digit, hinton2015, mythical_digit

PROTOCOLS = {
    mythical_digit.NAME: (
        mythical_digit.MythicalDigitConfig,
        mythical_digit.run,
        "teacher and four students, one class left out of the transfer set",
    ),
    every_digit.NAME: (
        every_digit.EveryDigitConfig,
        every_digit.run,
        "the mythical-class experiment for each class in turn, calibrated",
    ),
    hinton2015.NAME: (
        hinton2015.Hinton2015Config,
        hinton2015.run,
        "the paper's own MNIST numbers, side by side with kdlab's",
    ),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line on stderr, as for every other error
        self.exit(2, f"kdlab: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kdlab", description="Knowledge-distillation experiments (Hinton et al. 2015).")
    parser.add_argument("--version", action="version", version=f"kdlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="run an experiment protocol")
    protocols = run.add_subparsers(dest="protocol", required=True, parser_class=_Parser)
    for name, (config_cls, _, help_text) in PROTOCOLS.items():
        sub = protocols.add_parser(name, help=help_text, description=config_cls.__doc__)
        add_arguments(sub.add_argument_group("experiment"), config_cls)
        add_arguments(sub.add_argument_group("run"), RunOptions)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config_cls, run, _ = PROTOCOLS[args.protocol]
        opts = from_args(RunOptions, args)
        base = load_toml(opts.config) if opts.config else None
        config = from_args(config_cls, args, base)
        run(config, opts)
    except KdlabError as e:
        print(f"kdlab: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kdlab: interrupted; finished models are kept and a rerun reuses them", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
