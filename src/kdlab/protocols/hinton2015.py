"""The paper's own MNIST numbers (Hinton, Vinyals & Dean 2015, section 3), side by side.

A regularised teacher (dropout on inputs and hidden units, max-norm, 2-pixel jitter) teaches
unregularised 800-800 students: on all training images, without any 3, and with only 7s and
8s; a hard-label 800-800 student is the baseline. The bias of the missing classes is moved by
the paper's value and by the value best for this model. A temperature sweep over 300- and
30-unit students tests the paper's claim about which temperatures work.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from kdlab.calibration import label_share
from kdlab.config import RunOptions
from kdlab.errors import KdlabError
from kdlab.evaluation import Calibration
from kdlab.protocols.common import (
    Lab,
    ModelJob,
    Teacher,
    TrainedModel,
    data_identity,
    taught_by,
    train_spec,
    views_mb,
)
from kdlab.protocols.contract import Measured, Protocol
from kdlab.reporting import hinton2015 as reporting
from kdlab.result import Stage
from kdlab.settings.hinton2015 import HELP, KEPT, NAME, OMITTED, Hinton2015Config
from kdlab.training.augment import all_shifts
from kdlab.training.engine import SoftTargets, TrainSpec

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


@dataclass(frozen=True)
class Group:
    """Students of one loss, one per student seed (the first seed's keep the plain name, so a
    run with more seeds reuses them); alpha None: --alpha."""

    base: str
    alpha: float | None = None
    t2: bool | None = None  # None: --t2


@dataclass(frozen=True)
class Step:
    """A stage of 800-800 students trained together on one transfer set."""

    name: str
    transfer: str  # all, no3, only78
    groups: tuple[Group, ...]


STEPS = (
    Step("students", "all", (Group("Hard", alpha=0.0), Group("KD"))),
    Step("no3", "no3", (Group("KD No3"),)),
    Step("only78", "only78", (Group("KD 7,8 only"),)),
    # What the T^2 factor does once the hard labels are in the loss: without it, at T = 20 the
    # soft targets' gradients are 400 times smaller than the paper intends
    Step(
        "t2",
        "no3",
        (Group("KD No3 T2 on", ABLATION_ALPHA, t2=True), Group("KD No3 T2 off", ABLATION_ALPHA, t2=False)),
    ),
)


def student_name(base: str, seed: int, first: int) -> str:
    """The first seed's students keep the plain name (a run with more seeds reuses them)."""
    return base if seed == first else f"{base} seed {seed}"


@dataclass
class Tested:
    """The trained students' test errors, as the rows read them."""

    lab: Lab
    trained: dict[str, TrainedModel]
    seeds: list[int]
    first_seed: int
    teacher_errors: int
    shifts: dict[str, dict[str, list[float | None]]]  # per moved set ("3", "7,8"), per strategy

    def named(self, base: str, seed: int) -> str:
        return student_name(base, seed, self.first_seed)

    def errors(self, base: str, moved: tuple[int, ...] = (OMITTED,), shifts: list | None = None) -> list:
        """Each seed's (all, on `moved`) test errors, after its own shift when one is given."""
        models = [self.trained[self.named(base, s)] for s in self.seeds]
        return [(s.errors, s.omitted_errors) for s in self.lab.evaluate(models, omit=moved, shifts=shifts)]


@dataclass(frozen=True)
class Row:
    """A line of the side-by-side table: its label ({T}: the students' temperature, {t3}: the
    test 3s), the paper's number, and what kdlab measures for it."""

    label: str
    paper: float | str | None
    value: Callable[[Tested], list]
    unit: str = "errors"
    stage: str = "no3"

    def measure(self, tested: Tested, names: dict) -> list[tuple]:
        return [(self.label.format(**names), self.paper, self.value(tested), self.unit, self.stage)]


@dataclass(frozen=True)
class Shifted:
    """The rows of a bias shift, one per strategy: errors overall (and, with `on_moved`, on the
    moved classes) after each seed's shift; a strategy that found none says so."""

    label: str  # "… bias of 3 raised": " by <shift> (<strategy>)" follows
    classes: str  # key of the shifts: "3" or "7,8"
    base: str
    moved: tuple[int, ...]  # the classes whose errors the shift moves
    paper: tuple  # the paper's numbers for its own shift: overall (, on the moved classes)
    on_moved: str | None = None  # suffix of the row on the moved classes
    percent: bool = False
    stage: str = "no3"

    def measure(self, tested: Tested, names: dict) -> list[tuple]:
        unit, rows = "% error" if self.percent else "errors", []
        for how, shifts in tested.shifts[self.classes].items():
            suffixes = ("", *([self.on_moved] if self.on_moved else []))
            if None in shifts:  # prior matching found no shift: the rows say so
                rows += [(f"{self.label} ({how}){x}", None, [NOT_FOUND], unit, self.stage) for x in suffixes]
                continue
            errors = tested.errors(self.base, self.moved, shifts)
            label = f"{self.label} by {_shift_text(shifts)} ({how})"
            for i, x in enumerate(suffixes):
                values = [e[i] for e in errors]
                values = [100 * e / len(tested.lab.y_test) for e in values] if self.percent else values
                rows.append((label + x, self.paper[i] if how == "paper" else None, values, unit, self.stage))
        return rows


def errors(base: str, on_moved: bool = False, shift: float | None = None, percent: bool = False) -> Callable:
    """A row's value: each seed's test errors of the students `base` (on the 3s with
    `on_moved`), after the shift `shift` of class 3; as % of the test set with `percent`."""

    def value(tested: Tested) -> list:
        shifts = None if shift is None else [shift] * len(tested.seeds)
        found = [e[on_moved] for e in tested.errors(base, (OMITTED,), shifts)]
        return [100 * e / len(tested.lab.y_test) for e in found] if percent else found

    return value


_T2 = f"no 3s, hard labels weighted {1 - ABLATION_ALPHA:.1f}, T² {{}}, bias of 3 +3.50"
ROWS = (
    Row(
        "teacher 784-1200-1200-10 (dropout, max-norm, 2-px jitter)",
        67,
        lambda t: [t.teacher_errors],
        stage="teacher",
    ),
    Row("784-800-800-10, no regularisation, hard labels", 146, errors("Hard"), stage="students"),
    Row("784-800-800-10 distilled at T={T}", 74, errors("KD"), stage="students"),
    Row("same, transfer set without any 3", 206, errors("KD No3")),
    Row("… of them on the {t3} test 3s", 133, errors("KD No3", on_moved=True)),
    Shifted("… bias of 3 raised", "3", "KD No3", (OMITTED,), (109, 14), on_moved=": errors on 3s"),
    Row(
        "transfer set holding only 7s and 8s", 47.3, errors("KD 7,8 only", percent=True), "% error", "only78"
    ),
    Shifted("… biases of 7 and 8 moved", "7,8", "KD 7,8 only", KEPT, (13.2,), percent=True, stage="only78"),
    *(
        row
        for state in ("on", "off")
        for row in (
            Row(_T2.format(state), None, errors(f"KD No3 T2 {state}", shift=PAPER_SHIFT_3), stage="t2"),
            Row(
                _T2.format(state) + ": errors on 3s",
                None,
                errors(f"KD No3 T2 {state}", on_moved=True, shift=PAPER_SHIFT_3),
                stage="t2",
            ),
        )
    ),
)


@dataclass
class Hinton2015Measured(Measured):
    rows: list[tuple]  # per row of the table: (experiment, paper, per-seed values, unit, stage)
    sweep: dict  # the T-sweep's test errors per width
    shifts: dict  # each strategy's shift per seed, per moved set of classes
    stages: dict[str, Stage]


def measure(lab: Lab, config: Hinton2015Config) -> Hinton2015Measured:
    """Train (or reuse) the teacher, the declared stages and the T-sweep; measure every row."""
    rows = torch.arange(config.resolved("subset") or len(lab.x), device=lab.device)
    recipe = Recipe(config, lab)
    if config.jitter_transfer:
        check_views_fit(lab, len(rows), config.jitter)
    teacher = lab.teacher(recipe.teacher(), rows)
    stages = {"teacher": teacher.stage}
    _report_stage("teacher", stages["teacher"], lab.opts)
    targets = consistent_targets(lab, teacher, rows, config.jitter) if config.jitter_transfer else teacher
    on = lab.y[rows]
    transfers = {
        "all": rows,
        "no3": rows[on != OMITTED],
        "only78": rows[torch.isin(on, torch.tensor(KEPT, device=lab.device))],
    }
    for step in STEPS:
        jobs = [job for group in step.groups for job in recipe.students(group, step.transfer, teacher)]
        stages[step.name] = lab.train(jobs, transfers[step.transfer], teacher=targets)
        _report_stage(step.name, stages[step.name], lab.opts)
    sweep_jobs, sweep_index = recipe.sweep(teacher)
    # students of the stored images need only the teacher's logits on them, not its views
    stages["sweep"] = lab.train(sweep_jobs, rows, teacher=targets if config.sweep_jitter else teacher)
    _report_stage("sweep", stages["sweep"], lab.opts)

    # the label-free shifts read no test label: only the test images and the training labels
    trained = {m.name: m for step in STEPS for m in stages[step.name].models}
    tested = Tested(
        lab, trained, config.student_seeds(), config.seed, lab.evaluate([teacher.model])[0].errors, {}
    )
    others = tuple(c for c in range(len(lab.data.classes)) if c not in KEPT)
    for classes, base, moved, paper, sign in (
        ("3", "KD No3", (OMITTED,), PAPER_SHIFT_3, 1.0),
        ("7,8", "KD 7,8 only", others, PAPER_SHIFT_78, -1.0),  # -1: the kept classes lowered
    ):
        models = [trained[tested.named(base, s)] for s in tested.seeds]
        found = lab.calibrate(
            models,
            moved,
            tuple(STRATEGY_OF.values()),
            Calibration(teacher.test_logits, label_share(on, moved)),
        )
        tested.shifts[classes] = {
            "paper": [paper] * len(tested.seeds),
            **{how: [None if v is None else sign * v for v in found[s]] for how, s in STRATEGY_OF.items()},
        }
    sweep_errors = []
    for width in config.sweep_widths:  # one stack per width
        models = [m for m, (w, *_) in zip(stages["sweep"].models, sweep_index) if w == width]
        sweep_errors += [score.errors for score in lab.evaluate(models)]
    sweep = _sweep_table(sweep_index, sweep_errors)
    names = {"T": f"{config.temperature:g}", "t3": int((lab.y_test == OMITTED).sum())}
    measured = [row for declared in ROWS for row in declared.measure(tested, names)]
    return Hinton2015Measured(
        config,
        {n: s.models for n, s in stages.items()},
        measured + _sweep_rows(sweep),
        sweep,
        tested.shifts,
        stages,
    )


PROTOCOL = Protocol(NAME, HELP, Hinton2015Config, measure, reporting.analyse, reporting.render)


def check_views_fit(lab: Lab, rows: int, max_shift: int) -> None:
    """Refused before anything trains: consistent soft targets that exceed the memory budget."""
    need = views_mb(1, rows, max_shift, lab.num_classes)
    if need > lab.opts.memory_mb:
        raise KdlabError(
            f"--jitter-transfer with --jitter {max_shift} keeps the teacher's logits on {rows} images "
            f"under {len(all_shifts(max_shift))} shifts, about {need:.0f} MB, more than --memory-mb "
            f"{lab.opts.memory_mb}: give a larger budget or a smaller --jitter"
        )


def consistent_targets(
    lab: Lab, teacher: Teacher, rows: torch.Tensor, max_shift: int
) -> Callable[[], SoftTargets]:
    """The teacher's soft targets for students whose images move: its logits on every training
    row under every shift the jitter can draw, computed once (when a distilled student first
    trains) instead of a teacher's forward pass on every moved batch of every student. `rows`
    are the first training rows (0..R-1), so a row is its own index in the views."""

    if not torch.equal(rows, torch.arange(len(rows), device=rows.device)):
        raise ValueError("the views index rows by themselves: rows must be 0..R-1")

    @functools.cache
    def make() -> SoftTargets:
        views = lab.shifted_logits([teacher.model], rows, max_shift)[:, 0]  # [V, R, C]
        return SoftTargets(teacher.logits, None, views, None, max_shift)

    return make


@dataclass
class Recipe:
    """The models of the reproduction as jobs: the regularised teacher, the 800-800 students
    and the T-sweep's small students."""

    config: Hinton2015Config
    lab: Lab

    def spec(self, hidden: tuple[int, ...], role: str, seed: int, **fields) -> TrainSpec:
        """One model's training settings: the students' optimiser and no regulariser unless
        `fields` say otherwise (the teacher's); jittered transfer sets for distilled students
        when `--jitter-transfer` is on."""
        c = self.config
        optimizer = fields.pop("optimizer", c.student_optimizer)
        alpha = fields["alpha"]
        return train_spec(
            self.lab.data,
            hidden,
            role,
            seed,
            batch_size=c.batch_size,
            lr=fields.pop("lr", c.student_lr),
            t2=fields.pop("t2", c.t2),
            optimizer=optimizer,
            momentum=c.momentum if optimizer != "adam" else 0.0,
            schedule=c.schedule,
            dropout=fields.pop("dropout", 0.0),
            jitter=fields.pop("jitter", c.jitter if c.jitter_transfer and alpha > 0 else 0),
            **fields,
        )

    def job(self, name: str, spec: TrainSpec, transfer: str, teacher: Teacher | None, seed: int) -> ModelJob:
        rows_id = {**data_identity(self.lab.data, self.lab.device), "subset": self.config.resolved("subset")}
        identity = {"rows": rows_id, "transfer": transfer, "monitor": "test set"}
        if teacher is None:
            return ModelJob(name, spec, identity, seed)
        if spec.jitter:  # soft targets of the moved images, from the views computed once
            identity["soft_targets"] = "consistent views"
        return ModelJob(name, spec, taught_by(identity, teacher.model), seed)

    def teacher(self) -> ModelJob:
        """Every regulariser the paper names."""
        c = self.config
        spec = self.spec(
            c.teacher_hidden,
            "teacher",
            c.seed,
            alpha=0.0,
            temperature=1.0,
            epochs=c.resolved("teacher_epochs"),
            dropout=c.teacher_dropout,
            input_dropout=c.input_dropout,
            max_norm=c.max_norm,
            jitter=c.jitter,
            optimizer=c.teacher_optimizer,
            lr=c.teacher_lr,
        )
        return self.job("Teacher", spec, "all", None, c.seed)

    def students(self, group: Group, transfer: str, teacher: Teacher) -> list[ModelJob]:
        c = self.config
        alpha = c.alpha if group.alpha is None else group.alpha
        loss = {} if group.t2 is None else {"t2": group.t2}
        return [
            self.job(
                student_name(group.base, s, c.seed),
                self.spec(
                    c.student_hidden,
                    "student",
                    s,
                    alpha=alpha,
                    temperature=c.temperature,
                    epochs=c.resolved("student_epochs"),
                    **loss,
                ),
                transfer,
                teacher if alpha > 0 else None,
                s,
            )
            for s in c.student_seeds()
        ]

    def sweep(self, teacher: Teacher) -> tuple[list[ModelJob], list[tuple[int, float | None, int]]]:
        """Small students at every temperature, with a hard-label baseline per width, for each
        sweep seed (the first seed's keep the plain names, so more seeds reuse them)."""
        c, jobs, index = self.config, [], []
        epochs, alpha = c.resolved("sweep_epochs"), c.sweep_alpha or c.alpha
        moved = {} if c.sweep_jitter else {"jitter": 0}
        for width in c.sweep_widths:
            h = (width, width)
            for s in c.sweep_seed_list():
                spec = self.spec(h, "sweep", s, alpha=0.0, temperature=1.0, epochs=epochs)
                jobs.append(self.job(student_name(f"Hard {width}", s, c.seed), spec, "all", None, s))
                index.append((width, None, s))
                for t in c.sweep_temperatures:
                    spec = self.spec(h, "sweep", s, alpha=alpha, temperature=t, epochs=epochs, **moved)
                    name = student_name(f"KD {width} T={t:g}", s, c.seed)
                    jobs.append(self.job(name, spec, "all", teacher, s))
                    index.append((width, t, s))
        return jobs, index


def _shift_text(shifts: list[float]) -> str:
    """One shift, or the range of the seeds' shifts."""
    low, high = min(shifts), max(shifts)
    return f"{low:+.2f}" if f"{low:+.2f}" == f"{high:+.2f}" else f"{low:+.2f} to {high:+.2f}"


def _sweep_table(index: list[tuple[int, float | None, int]], errors: list[int]) -> dict:
    """Test errors per width, of the hard-label baseline and at every temperature: the mean
    over the sweep seeds, and each seed's (`per_seed`, in the order of `seeds`)."""
    found: dict[str, dict] = {}
    for (width, t, seed), e in zip(index, errors):
        found.setdefault(str(width), {}).setdefault(t, {})[seed] = e
    table = {}
    for width, by_t in found.items():
        seeds = sorted(by_t[None])
        temps = [t for t in by_t if t is not None]
        per_seed = [[by_t[t][s] for s in seeds] for t in temps]
        table[width] = {
            "hard": reporting.seed_mean([by_t[None][s] for s in seeds]),
            "temperature": temps,
            "errors": [reporting.seed_mean(v) for v in per_seed],
            "seeds": seeds,
            "hard_per_seed": [by_t[None][s] for s in seeds],
            "per_seed": per_seed,
        }
    return table


def _sweep_rows(sweep: dict) -> list[tuple]:
    """The paper's qualitative T-sweep claims, each as a measured row, on the mean over the
    sweep seeds: the best temperature, and the spread of the errors at T >= 8."""
    rows = []
    for width, entry in sweep.items():
        temps, errors = entry["temperature"], entry["errors"]
        best = temps[min(range(len(temps)), key=errors.__getitem__)]
        high = [e for t, e in zip(temps, errors) if t >= 8]
        paper = "2.5–4" if int(width) < 300 else "any above 8"
        seeds = len(entry["seeds"])
        over = "" if seeds == 1 else f", mean of {seeds} seeds"
        rows.append((f"{width}-unit students: best T{over}", paper, [best], "T", "sweep"))
        if high:
            similar = "similar" if int(width) >= 300 else None
            span = f"{reporting.fmt_value(min(high), 'errors')}–{reporting.fmt_value(max(high), 'errors')}"
            label = f"{width}-unit students: errors over T ≥ 8 (min–max{over})"
            rows.append((label, similar, [span], "errors", "sweep"))
    return rows


def _report_stage(name: str, stage: Stage, opts: RunOptions) -> None:
    if not opts.quiet:
        state = "reused" if stage.reused else "trained"
        print(
            f"{name}: {len(stage.models)} model(s) {state} in {stage.seconds:.1f} s "
            f"({stage.cpu_seconds:.1f} s of CPU; training took {stage.training_seconds:.1f} s)",
            flush=True,
        )
