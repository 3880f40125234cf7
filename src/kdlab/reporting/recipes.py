"""The hinton2015 recipe table: one line per `kdlab run hinton2015` run, the rows a reader checks
first side by side, so that the recipes tried (and those that lost) are compared on one page.

    python -m kdlab.reporting.recipes docs/hinton2015/recipes > docs/hinton2015/recipes/table.md
    python -m kdlab.reporting.recipes --teachers docs/hinton2015/recipes/teachers \
        > docs/hinton2015/recipes/teachers.md

Each sub-folder of the given folder is one run's output (its `results.json`); the settings
column lists what the run changed from `kdlab run hinton2015`'s defaults. With `--teachers`,
each file is a teacher's model record (`record.json` from the model store: no weights) and the
table follows its test error along its training, so that a teacher whose students have not
finished is still compared.
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

from kdlab.reporting.hinton2015 import fmt_value, seed_range
from kdlab.reporting.table import markdown
from kdlab.settings.hinton2015 import Hinton2015Config

# (column, the start of the row's experiment name); a row chosen by a strategy ends in "(how)"
COLUMNS = (
    ("teacher", "teacher 784-1200-1200-10"),
    ("hard 800-800", "784-800-800-10, no regularisation"),
    ("distilled 800-800", "784-800-800-10 distilled"),
    ("no 3s", "same, transfer set without any 3"),
    ("… on 3s", "… of them on the"),
)
PAPER = {"teacher": 67, "hard 800-800": 146, "distilled 800-800": 74, "no 3s": 206, "… on 3s": 133}
LABEL_FREE = ("prior matching", "prediction share")


def _value(row: dict) -> str:
    """kdlab's value as the run's table shows it, with the seeds' min–max where there are several."""
    spread = seed_range(row)
    return fmt_value(row["kdlab"], row["unit"]) + ("" if spread == "–" else f" ({spread})")


def _shifted(rows: list[dict], how: str) -> str:
    """Errors (on 3s) after the no-3 student's shift chosen by `how`."""
    total = next(
        (
            r
            for r in rows
            if r["experiment"].startswith("… bias of 3 raised") and r["experiment"].endswith(f"({how})")
        ),
        None,
    )
    on3 = next(
        (
            r
            for r in rows
            if r["experiment"].startswith("… bias of 3 raised")
            and r["experiment"].endswith(f"({how}): errors on 3s")
        ),
        None,
    )
    if total is None or on3 is None:
        return "–"
    return f"{_value(total)} ({_value(on3)})"


def _moved78(rows: list[dict], how: str) -> str:
    """% error of the 7s-and-8s student after its shift chosen by `how`."""
    row = next(
        (
            r
            for r in rows
            if r["experiment"].startswith("… biases of 7 and 8") and r["experiment"].endswith(f"({how})")
        ),
        None,
    )
    return _value(row) if row else "–"


def _changed(config: dict) -> str:
    """The settings of a run that differ from the protocol's defaults, as command-line flags."""
    defaults = {f.name: f.default for f in fields(Hinton2015Config)}
    flags = []
    for name, value in config.items():
        default = defaults.get(name)
        if isinstance(default, tuple):
            default = list(default)
        if value == default:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, list):
            flags.append(f"{flag} {' '.join(map(str, value))}")
        else:
            flags.append(f"{flag} {value}")
    return " ".join(flags) or "(defaults)"


def recipe_line(name: str, results: dict) -> list[str]:
    rows = results["rows"]
    by_start = {
        column: next((r for r in rows if r["experiment"].startswith(start)), None)
        for column, start in COLUMNS
    }
    training = sum(s["training_seconds"] for s in results["stages"].values())
    only78 = next((r for r in rows if r["experiment"].startswith("transfer set holding only 7s")), None)
    return [
        name,
        f"`{_changed(results['config'])}`",
        *(_value(r) if r else "–" for r in by_start.values()),
        _shifted(rows, "paper"),
        *(_shifted(rows, how) for how in LABEL_FREE),
        _shifted(rows, "best on test"),
        _value(only78) if only78 else "–",
        _moved78(rows, "prediction share"),
        f"{training / 60:.0f}",
    ]


def recipe_table(runs: dict[str, dict]) -> str:
    """The Markdown table of the runs (name -> results.json), in the order given."""
    head = [
        "Recipe",
        "Settings (changed from the defaults)",
        *(f"{c} (paper {PAPER[c]})" for c, _ in COLUMNS),
        "+3.5 (paper 109 (14))",
        *(f"{how}: errors (on 3s)" for how in LABEL_FREE),
        "best on test (uses test labels)",
        "7s and 8s only, % (paper 47.3)",
        "… prediction share, % (paper 13.2)",
        "training (min)",
    ]
    return markdown(head, [recipe_line(name, results) for name, results in runs.items()])


def teacher_table(records: dict[str, dict]) -> str:
    """One line per teacher record: its optimiser, lr and epochs, the engine and device kind that
    trained it (one seed trains other weights under another), then its error on the monitored
    set (%) every 10 epochs and at its last (the history monitors the test set unless a
    validation split was held out; nothing is chosen from it)."""
    last = max(len(r["history"]) for r in records.values())
    marks = sorted({*range(10, last + 1, 10), last})
    lines = []
    for name, record in records.items():
        spec, errors = record["spec"], {h["epoch"]: 100 * (1 - h["val_acc"]) for h in record["history"]}
        identity = record["identity"]
        device = identity.get("device") or identity.get("rows", {}).get("device", "–")
        engine = str(record.get("engine", 1))  # records older than the field are engine 1's
        cells = [f"{errors[e]:.2f}" if e in errors else "–" for e in marks]
        about = [
            spec["optimizer"],
            f"{spec['lr']:g}",
            str(spec["epochs"]),
            engine,
            device,
            identity["monitor"],
        ]
        lines.append([name, *about, *cells])
    head = ["Teacher", "optimiser", "lr", "epochs", "engine", "device", "monitored on"]
    head += [f"epoch {e}" for e in marks]
    return markdown(head, lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--teachers":
        records = {f.stem: json.loads(f.read_text()) for f in sorted(Path(args[1]).glob("*.json"))}
        print(teacher_table(records), end="")
        return 0
    if len(args) != 1:
        print("usage: python -m kdlab.reporting.recipes [--teachers] FOLDER", file=sys.stderr)
        return 2
    folder = Path(args[0])
    runs = {
        run.name: json.loads((run / "results.json").read_text())
        for run in sorted(folder.iterdir())
        if (run / "results.json").is_file()
    }
    print(recipe_table(runs), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
