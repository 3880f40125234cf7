"""The `kdlab` command: `kdlab run PROTOCOL [options]`, `kdlab sweep FILE`, `kdlab tune FILE`,
`kdlab data pack`, `kdlab reproduce`, `kdlab docs`; options generated from the configs."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from kdlab import protocols
from kdlab.config import RunOptions, add_arguments, from_args, load_toml
from kdlab.data.pack import PackOptions
from kdlab.docs.settings import DocsOptions, ReproduceOptions
from kdlab.errors import KdlabError
from kdlab.io import holding_claims
from kdlab.sweep.options import Budget, RayOptions, SharedRunOptions, TuneBudget, budget_overrides
from kdlab.version import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line on stderr, as for every other error
        self.exit(2, f"kdlab: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kdlab", description="Knowledge-distillation experiments (Hinton et al. 2015).")
    parser.add_argument("--version", action="version", version=f"kdlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="run an experiment protocol")
    runs = run.add_subparsers(dest="protocol", required=True, parser_class=_Parser)
    for name in protocols.names():
        proto = protocols.get(name)
        sub = runs.add_parser(name, help=proto.help, description=proto.settings.__doc__)
        add_arguments(sub.add_argument_group("experiment"), proto.settings)
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
    data = commands.add_parser("data", help="prepare your own data set")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    pack_help = "pack a folder of images in class subfolders into an .npz data set (see docs/data.md)"
    pack = data_commands.add_parser("pack", help=pack_help, description=pack_help)
    layout = "<class>/<image> or train|test/<class>/<image>"
    pack.add_argument("folder", type=Path, metavar="FOLDER", help=layout)
    pack.add_argument("npz", type=Path, metavar="OUT.npz", help="the data set file to write")
    add_arguments(pack.add_argument_group("options"), PackOptions)
    for name, help_text, cls in (
        ("reproduce", "rerun the published studies whose outputs in docs/ are not current", ReproduceOptions),
        ("docs", "refresh the docs' tables from the runs' outputs, and docs/options.md", DocsOptions),
    ):
        sub = commands.add_parser(name, help=help_text, description=cls.__doc__)
        add_arguments(sub.add_argument_group(name), cls)
    return parser


def _data(args: argparse.Namespace) -> None:
    from kdlab.data.pack import pack

    counts = pack(args.folder, args.npz, from_args(PackOptions, args))
    print(
        f"wrote {args.npz}: {counts['classes']} classes, "
        f"{counts['train']} training and {counts['test']} test images"
    )


def _run(args: argparse.Namespace) -> None:
    """The API's run with the output folder claimed first (a wrong folder costs no training),
    then the results saved and printed."""
    from kdlab import tracking

    proto = protocols.get(args.protocol)
    opts = from_args(RunOptions, args)
    base = load_toml(opts.config) if opts.config else None
    config = from_args(proto.settings, args, base)
    if opts.tracker:
        tracking.require(opts.tracker, opts.tracking_uri)  # before anything runs
    out = opts.out or Path("runs") / proto.name
    opts = replace(opts, out=out, models_dir=opts.models_dir or out / "models")
    result = proto.run(config, opts)
    result.save(out)
    if not opts.quiet:
        print()  # past the progress bars
    print(result.summary())
    print(f"\nwrote {out}/ ({result.files()}) in {result.data['wall_time_s']:.1f} s")
    if opts.tracker:  # from what the run wrote: no number can change
        tracking.log_run(opts.tracker, out, out, opts.tracking_uri, proto.name, out.resolve().name)


def _sweep(args: argparse.Namespace) -> None:
    from kdlab.sweep.runner import run_sweep
    from kdlab.sweep.spec import load_spec

    spec = load_spec(args.file).with_overrides(budget_overrides(from_args(Budget, args)))
    run_sweep(spec, from_args(SharedRunOptions, args), from_args(RayOptions, args, spec.resources))


def _tune(args: argparse.Namespace) -> None:
    from kdlab.sweep.tune import load_tune_spec, run_tune

    spec = load_tune_spec(args.file, budget_overrides(from_args(Budget, args)), from_args(TuneBudget, args))
    run_tune(spec, from_args(SharedRunOptions, args), from_args(RayOptions, args, spec.resources))


def _reproduce(args: argparse.Namespace) -> None:
    from kdlab import api

    opts = from_args(ReproduceOptions, args)
    if opts.list:
        for name, minutes, page, status in api.list_studies():
            print(f"{name:<34} {minutes:>5g} min  {page:<22} {status}")
        return
    outcomes = api.reproduce(
        opts.study,
        dry_run=opts.dry_run,
        data_dir=opts.data_dir,
        models_dir=opts.models_dir,
        progress=not opts.quiet,
        say=print,
    )
    failed = [o.study for o in outcomes if o.status == "failed"]
    if failed:
        raise KdlabError(f"{len(failed)} studies failed: {', '.join(failed)}")


def _docs(args: argparse.Namespace) -> None:
    from kdlab import api

    check = from_args(DocsOptions, args).check
    found, missing = api.refresh_docs(check=check)
    for line in missing:
        print(f"missing: {line}")
    for line in found:
        print(line if check else f"refreshed {line}")
    if check and found:
        raise KdlabError(f"{len(found)} problem(s) in the docs")


COMMANDS = {
    "run": _run,
    "sweep": _sweep,
    "tune": _tune,
    "data": _data,
    "reproduce": _reproduce,
    "docs": _docs,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with holding_claims():  # an output folder claimed by the command is held until it ends
            COMMANDS[args.command](args)
    except KdlabError as e:
        print(f"kdlab: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    except KeyboardInterrupt:
        print("kdlab: interrupted; finished models are kept and a rerun reuses them", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
