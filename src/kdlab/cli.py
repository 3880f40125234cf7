"""The `kdlab` command: `kdlab run PROTOCOL [options]`, `kdlab sweep FILE`, `kdlab tune FILE`;
options generated from the configs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kdlab import KdlabError, __version__
from kdlab.config import RunOptions, add_arguments, from_args, load_toml
from kdlab.protocols import every_digit, hinton2015, mythical_digit, soft_regularizer
from kdlab.sweep.options import Budget, RayOptions, SharedRunOptions
from kdlab.sweep.tune import TuneBudget

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
    soft_regularizer.NAME: (
        soft_regularizer.SoftRegularizerConfig,
        soft_regularizer.run,
        "students on a fraction of the data: hard labels, early stopping, soft targets",
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
    for name, help_text, budgets in (
        ("sweep", "run every point of a sweep file on Ray", (Budget,)),
        (
            "tune",
            "search a sweep file's space with Ray Tune, then re-validate the winner",
            (Budget, TuneBudget),
        ),
    ):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("file", type=Path, metavar="FILE", help="sweep file (TOML or YAML); see sweeps/")
        for cls in budgets:
            add_arguments(sub.add_argument_group("budget overrides"), cls)
        add_arguments(sub.add_argument_group("ray"), RayOptions)
        add_arguments(sub.add_argument_group("run"), SharedRunOptions)
    return parser


def _run(args: argparse.Namespace) -> None:
    config_cls, run, _ = PROTOCOLS[args.protocol]
    opts = from_args(RunOptions, args)
    base = load_toml(opts.config) if opts.config else None
    run(from_args(config_cls, args, base), opts)


def _sweep(args: argparse.Namespace) -> None:
    from kdlab.sweep.options import budget_overrides
    from kdlab.sweep.runner import run_sweep
    from kdlab.sweep.spec import load_spec

    spec = load_spec(args.file).with_overrides(budget_overrides(from_args(Budget, args)))
    run_sweep(spec, from_args(SharedRunOptions, args), from_args(RayOptions, args, spec.resources))


def _tune(args: argparse.Namespace) -> None:
    from kdlab.sweep.options import budget_overrides
    from kdlab.sweep.tune import load_tune_spec, run_tune

    spec = load_tune_spec(args.file, budget_overrides(from_args(Budget, args)), from_args(TuneBudget, args))
    run_tune(spec, from_args(SharedRunOptions, args), from_args(RayOptions, args, spec.resources))


COMMANDS = {"run": _run, "sweep": _sweep, "tune": _tune}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except KdlabError as e:
        print(f"kdlab: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kdlab: interrupted; finished models are kept and a rerun reuses them", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
