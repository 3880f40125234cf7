"""The paper's own MNIST numbers (Hinton, Vinyals & Dean 2015, section 3), side by side.

A regularised teacher (dropout on inputs and hidden units, max-norm, 2-pixel jitter) teaches
unregularised 800-800 students: on all training images, without any 3, and with only 7s and
8s; a hard-label 800-800 student is the baseline. The bias of the missing classes is moved by
the paper's value and by the value best for this model. A temperature sweep over 300- and
30-unit students tests the paper's claim about which temperatures work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdlab import KdlabError
from kdlab.calibration import label_share
from kdlab.config import RunOptions, check_fields, option, same_as
from kdlab.data import Dataset
from kdlab.evaluation import Calibration
from kdlab.protocols.common import Lab, ModelJob, Stage, TrainedModel, data_identity, derive_seed, taught_by
from kdlab.protocols.contract import Measured, Protocol
from kdlab.protocols.study import StudyConfig, require_every_class
from kdlab.reporting import hinton2015 as reporting
from kdlab.training.engine import TrainSpec
from kdlab.training.optim import OPTIMIZERS
from kdlab.training.schedule import SCHEDULES

NAME = "hinton2015"
OMITTED = 3  # the mythical digit
KEPT = (7, 8)  # the only digits of the second reduced transfer set
PAPER_SHIFT_3 = 3.5  # added to the bias of class 3
PAPER_SHIFT_78 = -7.6  # added to the biases of classes 7 and 8
# soft-target weight of the T^2 ablation: the hard labels weighted 0.1, as in the published
# reproduction (kdlab run mythical-digit's default), whose loss left the T^2 factor out
ABLATION_ALPHA = 0.9
NOT_FOUND = "not found"  # a calibration row whose shift could not be chosen
# the label-free and oracle shifts of the table, by the calibration strategy that chooses them
STRATEGY_OF = {
    "best on test": "oracle-test",
    "prior matching": "prior-matching",
    "prediction share": "prediction-share",
}

# Epochs and training images of each budget; everything else is the same in both.
BUDGETS = {
    "full": {"subset": 0, "teacher_epochs": 60, "student_epochs": 30, "sweep_epochs": 15},
    "quick": {"subset": 6000, "teacher_epochs": 3, "student_epochs": 3, "sweep_epochs": 2},
}


@dataclass(frozen=True)
class Hinton2015Config:
    """Settings of the reproduction; the defaults are the paper's where it gives them."""

    budget: str = option(
        "full", "full: the real thing; quick: a minutes-long smoke version", choices=tuple(BUDGETS)
    )
    dataset: str = same_as(StudyConfig, "dataset", note="the paper's numbers are for mnist")
    seed: int = same_as(StudyConfig, "seed", note="of the teacher, the T-sweep and the first students")
    seeds: int = same_as(
        StudyConfig, "seeds", note="of the 800-800 students: each of their rows is the mean, with min and max"
    )
    batch_size: int = same_as(StudyConfig, "batch_size")
    teacher_hidden: tuple[int, ...] = same_as(StudyConfig, "teacher_hidden", (1200, 1200))
    teacher_dropout: float = option(0.5, "teacher: dropout on the hidden units", ge=0, lt=1)
    input_dropout: float = option(0.2, "teacher: dropout on the input pixels", ge=0, lt=1)
    max_norm: float = option(3.5, "teacher: max L2 norm of each unit's incoming weights (0: none)", ge=0)
    jitter: int = option(2, "teacher: random translation of its training images by up to N pixels", ge=0)
    teacher_optimizer: str = option("adam", f"teacher optimiser: {', '.join(OPTIMIZERS)}", choices=OPTIMIZERS)
    teacher_lr: float = option(1e-3, "teacher learning rate", gt=0)
    momentum: float = option(0.9, "momentum of sgd and nesterov (teacher or students)", ge=0, lt=1)
    schedule: str = option(
        "cosine", f"learning-rate schedule of every model: {', '.join(SCHEDULES)}", choices=SCHEDULES
    )
    student_hidden: tuple[int, ...] = same_as(StudyConfig, "student_hidden", (800, 800))
    student_optimizer: str = option("adam", f"student optimiser: {', '.join(OPTIMIZERS)}", choices=OPTIMIZERS)
    student_lr: float = option(1e-3, "student learning rate", gt=0)
    temperature: float = same_as(StudyConfig, "temperature", 20.0, "of the 800-800 students")
    alpha: float = same_as(StudyConfig, "alpha", 1.0, "here > 0 (1: soft targets only)")
    t2: bool = same_as(StudyConfig, "t2")
    jitter_transfer: bool = option(
        False, "jitter the students' transfer set too (the teacher then sees every jittered batch)"
    )
    sweep_temperatures: tuple[float, ...] = option(
        (1.0, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0, 30.0),
        "temperatures of the T-sweep",
        gt=0,
        min_len=2,
        unique=True,
    )
    sweep_widths: tuple[int, ...] = option(
        (300, 30), "hidden widths (both layers) of the T-sweep students", ge=1, min_len=1, unique=True
    )
    teacher_epochs: int = option(0, "teacher epochs (0: the budget's)", ge=0)
    student_epochs: int = option(0, "epochs of the 800-800 students (0: the budget's)", ge=0)
    sweep_epochs: int = option(0, "epochs of the T-sweep students (0: the budget's)", ge=0)
    subset: int | None = same_as(StudyConfig, "subset", None, "unset: the budget's")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.alpha == 0:  # its KD students would be its hard-label student, under another name
            raise KdlabError("--alpha must be > 0 here: every student but Hard distils")
        if self.jitter_transfer and self.jitter == 0:
            raise KdlabError("--jitter-transfer needs --jitter > 0: with 0 pixels nothing moves")

    def resolve(self, data: Dataset) -> Hinton2015Config:
        """Checks that need the data, before anything is written."""
        if len(data.classes) <= max(OMITTED, *KEPT):
            raise KdlabError(f"{self.dataset} has too few classes for this protocol")
        subset, n = self.resolved("subset"), len(data.y_train)
        if subset > n:
            raise KdlabError(f"subset {subset} is larger than the training set ({n})")
        require_every_class(data.y_train[: subset or n], data.classes, subset)
        return self

    def student_seeds(self) -> list[int]:
        """The 800-800 students' seeds: --seeds of them from --seed on."""
        return [self.seed + k for k in range(self.seeds)]

    def resolved(self, name: str) -> int:
        """An epoch count or the subset: the value given, else the budget's."""
        value = getattr(self, name)
        unset = None if name == "subset" else 0
        return BUDGETS[self.budget][name] if value == unset else value


@dataclass
class Hinton2015Measured(Measured):
    rows: list[dict]  # the side-by-side table
    sweep: dict  # the T-sweep's test errors per width
    shifts: dict  # each strategy's shift per seed, per moved set of classes
    stages: dict  # each stage's time and reuse
    histories: dict[str, list[dict]]


def measure(lab: Lab, config: Hinton2015Config) -> Hinton2015Measured:
    opts = lab.opts
    data, x, y, y_test = lab.data, lab.x, lab.y, lab.y_test
    subset = config.resolved("subset")
    rows = torch.arange(subset or len(x), device=lab.device)
    num_classes = len(data.classes)
    rows_id = {**data_identity(data, lab.device), "subset": subset}

    def spec(hidden, alpha, temperature, epochs, role, **regularisers) -> TrainSpec:
        return make_spec(config, data, hidden, alpha, temperature, epochs, role, **regularisers)

    def job(name: str, train_spec: TrainSpec, transfer_name: str, distils: bool, seed: int) -> ModelJob:
        identity = {"rows": rows_id, "transfer": transfer_name, "monitor": "test set"}
        return ModelJob(name, train_spec, taught_by(identity, teacher.model) if distils else identity, seed)

    # The teacher: every regulariser the paper names
    teacher_spec = spec(
        config.teacher_hidden,
        0.0,
        1.0,
        config.resolved("teacher_epochs"),
        "teacher",
        dropout=config.teacher_dropout,
        input_dropout=config.input_dropout,
        max_norm=config.max_norm,
        jitter=config.jitter,
        optimizer=config.teacher_optimizer,
        lr=config.teacher_lr,
    )
    teacher = lab.teacher(job("Teacher", teacher_spec, "all", False, config.seed), rows)
    stages = {"teacher": teacher.stage}
    _report_stage("teacher", stages["teacher"], opts)

    # The 800-800 students: hard labels, distilled, distilled without 3s, distilled on 7s and 8s,
    # each over the student seeds (the first seed's models keep the plain names, so a run with
    # more seeds reuses them)
    epochs, hidden, temp = config.resolved("student_epochs"), config.student_hidden, config.temperature
    seeds = config.student_seeds()

    def named(base: str, seed: int) -> str:
        return base if seed == config.seed else f"{base} seed {seed}"

    def students(base: str, transfer_name: str, alpha: float, **loss) -> list[ModelJob]:
        return [
            job(
                named(base, s),
                spec(hidden, alpha, temp, epochs, "student", seed=s, **loss),
                transfer_name,
                alpha > 0,
                s,
            )
            for s in seeds
        ]

    on = y[rows]
    transfers = {
        "all": rows,
        "no3": rows[on != OMITTED],
        "only78": rows[torch.isin(on, torch.tensor(KEPT, device=lab.device))],
    }
    planned = {
        "students": ("all", students("Hard", "all", 0.0) + students("KD", "all", config.alpha)),
        "no3": ("no3", students("KD No3", "no3", config.alpha)),
        "only78": ("only78", students("KD 7,8 only", "only78", config.alpha)),
        # What the T^2 factor does once the hard labels are in the loss: without it, at T = 20
        # the soft targets' gradients are 400 times smaller than the paper intends
        "t2": (
            "no3",
            students("KD No3 T2 on", "no3", ABLATION_ALPHA, t2=True)
            + students("KD No3 T2 off", "no3", ABLATION_ALPHA, t2=False),
        ),
    }
    for name, (transfer_name, jobs) in planned.items():
        stages[name] = lab.train(jobs, transfers[transfer_name], teacher=teacher)
        _report_stage(name, stages[name], opts)

    # The T-sweep: small students at every temperature, with a hard-label baseline per width
    sweep_jobs, sweep_index = [], []
    for width in config.sweep_widths:
        h = (width, width)
        sweep_jobs.append(
            job(
                f"Hard {width}",
                spec(h, 0.0, 1.0, config.resolved("sweep_epochs"), "sweep"),
                "all",
                False,
                config.seed,
            )
        )
        sweep_index.append((width, None))
        for t in config.sweep_temperatures:
            s = spec(h, config.alpha, t, config.resolved("sweep_epochs"), "sweep")
            sweep_jobs.append(job(f"KD {width} T={t:g}", s, "all", True, config.seed))
            sweep_index.append((width, t))
    stages["sweep"] = lab.train(sweep_jobs, transfers["all"], teacher=teacher)
    _report_stage("sweep", stages["sweep"], opts)

    # Test errors, and the bias shifts
    trained = {m.name: m for name in planned for m in stages[name].models}
    others = tuple(c for c in range(num_classes) if c not in KEPT)

    def of(base: str) -> list[TrainedModel]:
        return [trained[named(base, s)] for s in seeds]

    def per_seed(base: str, moved: tuple[int, ...] = (OMITTED,), shifts: list | None = None) -> list:
        """Each seed's (all, on `moved`) test errors, after its own shift when one is given."""
        return [(s.errors, s.omitted_errors) for s in lab.evaluate(of(base), omit=moved, shifts=shifts)]

    # the label-free shifts read no test label: only the test images and the training labels

    def shifts_for(base: str, moved: tuple[int, ...], sign: float) -> dict[str, list[float | None]]:
        """Each strategy's shift of each seed's student; `sign` -1 lowers the kept classes by
        raising the others (softmax ignores a common shift)."""
        given = Calibration(teacher.test_logits, label_share(on, moved))
        found = lab.calibrate(of(base), moved, tuple(STRATEGY_OF.values()), given)
        return {how: [None if v is None else sign * v for v in found[s]] for how, s in STRATEGY_OF.items()}

    shifts_3 = {"paper": [PAPER_SHIFT_3] * len(seeds), **shifts_for("KD No3", (OMITTED,), 1.0)}
    shifts_78 = {"paper": [PAPER_SHIFT_78] * len(seeds), **shifts_for("KD 7,8 only", others, -1.0)}
    sweep_errors = []
    for width in config.sweep_widths:  # one stack per width
        models = [m for m, (w, _) in zip(stages["sweep"].models, sweep_index) if w == width]
        sweep_errors += [score.errors for score in lab.evaluate(models)]
    sweep = _sweep_table(sweep_index, sweep_errors)

    seconds = {name: stage.training_seconds for name, stage in stages.items()}
    reused = {name: stage.reused for name, stage in stages.items()}

    def row(experiment: str, paper, values: list, unit: str, stage: str) -> dict:
        return _row(experiment, paper, values, unit, stage, seconds[stage], reused[stage])

    n_test = len(y_test)

    def percent(errors: list) -> list[float]:
        return [100 * e / n_test for e in errors]

    t3 = int((y_test == OMITTED).sum())
    teacher_errors = lab.evaluate([teacher.model])[0].errors
    no3 = per_seed("KD No3", (OMITTED,))
    rows_out = [
        row(
            "teacher 784-1200-1200-10 (dropout, max-norm, 2-px jitter)",
            67,
            [teacher_errors],
            "errors",
            "teacher",
        ),
        row(
            "784-800-800-10, no regularisation, hard labels",
            146,
            [e for e, _ in per_seed("Hard")],
            "errors",
            "students",
        ),
        row(
            f"784-800-800-10 distilled at T={temp:g}",
            74,
            [e for e, _ in per_seed("KD")],
            "errors",
            "students",
        ),
        row("same, transfer set without any 3", 206, [e for e, _ in no3], "errors", "no3"),
        row(f"… of them on the {t3} test 3s", 133, [e for _, e in no3], "errors", "no3"),
    ]
    for how, shifts in shifts_3.items():
        if None in shifts:  # prior matching found no shift: the rows say so
            for suffix in ("", ": errors on 3s"):
                rows_out.append(
                    row(f"… bias of 3 raised ({how}){suffix}", None, [NOT_FOUND], "errors", "no3")
                )
            continue
        moved = per_seed("KD No3", (OMITTED,), shifts)
        label = f"… bias of 3 raised by {_shift_text(shifts)} ({how})"
        paper = how == "paper"
        rows_out.append(row(label, 109 if paper else None, [e for e, _ in moved], "errors", "no3"))
        rows_out.append(
            row(f"{label}: errors on 3s", 14 if paper else None, [e for _, e in moved], "errors", "no3")
        )
    only78 = [e for e, _ in per_seed("KD 7,8 only")]
    rows_out.append(row("transfer set holding only 7s and 8s", 47.3, percent(only78), "% error", "only78"))
    for how, shifts in shifts_78.items():
        if None in shifts:
            rows_out.append(row(f"… biases of 7 and 8 moved ({how})", None, [NOT_FOUND], "% error", "only78"))
            continue
        moved = [e for e, _ in per_seed("KD 7,8 only", KEPT, shifts)]
        label = f"… biases of 7 and 8 moved by {_shift_text(shifts)} ({how})"
        rows_out.append(row(label, 13.2 if how == "paper" else None, percent(moved), "% error", "only78"))
    for state in ("on", "off"):
        moved = per_seed(f"KD No3 T2 {state}", (OMITTED,), [PAPER_SHIFT_3] * len(seeds))
        label = f"no 3s, hard labels weighted {1 - ABLATION_ALPHA:.1f}, T² {state}, bias of 3 +3.50"
        rows_out.append(row(label, None, [e for e, _ in moved], "errors", "t2"))
        rows_out.append(row(f"{label}: errors on 3s", None, [e for _, e in moved], "errors", "t2"))
    rows_out += _sweep_rows(sweep, row)
    return Hinton2015Measured(
        settings=config,
        models={name: stage.models for name, stage in stages.items()},
        rows=rows_out,
        sweep=sweep,
        shifts={"3": shifts_3, "7,8": shifts_78},
        stages={
            name: {
                "seconds": s.seconds,
                "cpu_seconds": s.cpu_seconds,
                "training_seconds": s.training_seconds,
                "reused": s.reused,
            }
            for name, s in stages.items()
        },
        histories={m.name: m.record["history"] for stage in stages.values() for m in stage.models},
    )


PROTOCOL = Protocol(
    NAME,
    "the paper's own MNIST numbers, side by side with kdlab's",
    Hinton2015Config,
    measure,
    reporting.analyse,
    reporting.render,
)


def make_spec(
    config: Hinton2015Config, data, hidden, alpha, temperature, epochs, role, **regularisers
) -> TrainSpec:
    """One model's training settings: the students' optimiser and no regulariser unless
    `regularisers` say otherwise (the teacher's); jittered transfer sets for distilled students
    when `--jitter-transfer` is on."""
    optimizer = regularisers.pop("optimizer", config.student_optimizer)
    seed = regularisers.pop("seed", config.seed)
    return TrainSpec(
        sizes=(data.num_features, *hidden, len(data.classes)),
        epochs=epochs,
        batch_size=config.batch_size,
        lr=regularisers.pop("lr", config.student_lr),
        alpha=alpha,
        temperature=temperature if alpha > 0 else 1.0,
        t2=regularisers.pop("t2", config.t2) and alpha > 0,
        init_seed=derive_seed(seed, f"{role}-init"),
        stream_seed=derive_seed(seed, f"{role}-stream"),
        optimizer=optimizer,
        momentum=config.momentum if optimizer != "adam" else 0.0,
        schedule=config.schedule,
        dropout=regularisers.pop("dropout", 0.0),
        jitter=regularisers.pop("jitter", config.jitter if config.jitter_transfer and alpha > 0 else 0),
        **regularisers,
    )


def _row(experiment, paper, values: list, unit: str, stage: str, seconds: float, reused: bool) -> dict:
    """One line of the side-by-side table: the mean over the student seeds' `values` (one value:
    itself) with their min and max; `stage` names the training it needed, whose recorded
    training time is the row's time."""
    numeric = all(isinstance(v, (int, float)) for v in values)
    kdlab = (values[0] if len(values) == 1 else sum(values) / len(values)) if numeric else values[0]
    return {
        "experiment": experiment,
        "paper": paper,
        "kdlab": kdlab,
        "difference": kdlab - paper if numeric and isinstance(paper, (int, float)) else None,
        "per_seed": values,
        "min": min(values) if numeric else None,
        "max": max(values) if numeric else None,
        "unit": unit,
        "stage": stage,
        "stage_seconds": seconds,
        "reused": reused,
    }


def _shift_text(shifts: list[float]) -> str:
    """One shift, or the range of the seeds' shifts."""
    low, high = min(shifts), max(shifts)
    return f"{low:+.2f}" if f"{low:+.2f}" == f"{high:+.2f}" else f"{low:+.2f} to {high:+.2f}"


def _sweep_table(index: list[tuple[int, float | None]], errors: list[int]) -> dict:
    """Test errors per width: of the hard-label baseline and at every temperature."""
    table: dict[str, dict] = {}
    for (width, t), e in zip(index, errors):
        entry = table.setdefault(str(width), {"hard": None, "temperature": [], "errors": []})
        if t is None:
            entry["hard"] = e
        else:
            entry["temperature"].append(t)
            entry["errors"].append(e)
    return table


def _sweep_rows(sweep: dict, row) -> list[dict]:
    """The paper's qualitative T-sweep claims, each as a measured row."""
    rows = []
    for width, entry in sweep.items():
        temps, errors = entry["temperature"], entry["errors"]
        best = temps[min(range(len(temps)), key=errors.__getitem__)]
        high = [e for t, e in zip(temps, errors) if t >= 8]
        paper = "2.5–4" if int(width) < 300 else "any above 8"
        rows.append(row(f"{width}-unit students: best T", paper, [best], "T", "sweep"))
        if high:
            similar = "similar" if int(width) >= 300 else None
            span = f"{min(high)}–{max(high)}"
            rows.append(
                row(f"{width}-unit students: errors over T ≥ 8 (min–max)", similar, [span], "errors", "sweep")
            )
    return rows


def _report_stage(name: str, stage: Stage, opts: RunOptions) -> None:
    if not opts.quiet:
        state = "reused" if stage.reused else "trained"
        print(
            f"{name}: {len(stage.models)} model(s) {state} in {stage.seconds:.1f} s "
            f"({stage.cpu_seconds:.1f} s of CPU; training took {stage.training_seconds:.1f} s)",
            flush=True,
        )
