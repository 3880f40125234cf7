"""The paper's own MNIST numbers (Hinton, Vinyals & Dean 2015, section 3), side by side.

A regularised teacher (dropout on inputs and hidden units, max-norm, 2-pixel jitter) teaches
unregularised 800-800 students: on all training images, without any 3, and with only 7s and
8s; a hard-label 800-800 student is the baseline. The bias of the missing classes is moved by
the paper's value and by the value best for this model. A temperature sweep over 300- and
30-unit students tests the paper's claim about which temperatures work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from kdlab import KdlabError
from kdlab.calibration import (
    accuracy_at,
    best_shift,
    label_share,
    prediction_share_shift,
    prior_matching_shift,
)
from kdlab.config import RunOptions, check_fields, option, same_as, to_dict
from kdlab.protocols.common import ModelJob, Stage, data_identity, derive_seed, open_lab, taught_by
from kdlab.protocols.study import StudyConfig, evaluation
from kdlab.reporting.hinton2015 import write_hinton2015_outputs
from kdlab.result import Result
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
    seed: int = same_as(StudyConfig, "seed", note="here of every model")
    batch_size: int = same_as(StudyConfig, "batch_size")
    teacher_hidden: tuple[int, ...] = same_as(StudyConfig, "teacher_hidden", (1200, 1200))
    teacher_dropout: float = option(0.5, "teacher: dropout on the hidden units", ge=0, lt=1)
    input_dropout: float = option(0.2, "teacher: dropout on the input pixels", ge=0, lt=1)
    max_norm: float = option(3.5, "teacher: max L2 norm of each unit's incoming weights (0: none)", ge=0)
    jitter: int = option(2, "teacher: random translation of its training images by up to N pixels", ge=0)
    teacher_optimizer: str = option("adam", f"teacher optimiser: {', '.join(OPTIMIZERS)}", choices=OPTIMIZERS)
    teacher_lr: float = option(1e-3, "teacher learning rate", gt=0)
    momentum: float = option(0.9, "momentum of sgd (teacher or students)", ge=0, lt=1)
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

    def resolved(self, name: str) -> int:
        """An epoch count or the subset: the value given, else the budget's."""
        value = getattr(self, name)
        unset = None if name == "subset" else 0
        return BUDGETS[self.budget][name] if value == unset else value


def run(config: Hinton2015Config, opts: RunOptions) -> Result:
    start = time.perf_counter()
    lab = open_lab(opts, config.dataset)
    data, x, y, y_test = lab.data, lab.x, lab.y, lab.y_test
    if len(data.classes) <= max(OMITTED, *KEPT):
        raise KdlabError(f"{config.dataset} has too few classes for this protocol")
    subset = config.resolved("subset")
    if subset > len(x):
        raise KdlabError(f"subset {subset} is larger than the training set ({len(x)})")
    lab.claim(NAME, to_dict(config))
    rows = torch.arange(subset or len(x), device=lab.device)
    num_classes = len(data.classes)
    rows_id = {**data_identity(data, lab.device), "subset": subset}

    def spec(hidden, alpha, temperature, epochs, role, **regularisers) -> TrainSpec:
        return make_spec(config, data, hidden, alpha, temperature, epochs, role, **regularisers)

    def job(name: str, train_spec: TrainSpec, transfer_name: str, distils: bool) -> ModelJob:
        identity = {"rows": rows_id, "transfer": transfer_name, "monitor": "test set"}
        return ModelJob(
            name, train_spec, taught_by(identity, teacher.model) if distils else identity, config.seed
        )

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
    teacher = lab.teacher(job("Teacher", teacher_spec, "all", False), rows)
    stages = {"teacher": teacher.stage}
    _report_stage("teacher", stages["teacher"], opts)

    # The 800-800 students: hard labels, distilled, distilled without 3s, distilled on 7s and 8s
    epochs, hidden, temp = config.resolved("student_epochs"), config.student_hidden, config.temperature
    on = y[rows]
    transfers = {
        "all": rows,
        "no3": rows[on != OMITTED],
        "only78": rows[torch.isin(on, torch.tensor(KEPT, device=lab.device))],
    }
    stages["students"] = lab.train(
        [
            job("Hard", spec(hidden, 0.0, 1.0, epochs, "student"), "all", False),
            job("KD", spec(hidden, config.alpha, temp, epochs, "student"), "all", True),
        ],
        transfers["all"],
        teacher=teacher,
    )
    stages["no3"] = lab.train(
        [job("KD No3", spec(hidden, config.alpha, temp, epochs, "student"), "no3", True)],
        transfers["no3"],
        teacher=teacher,
    )
    stages["only78"] = lab.train(
        [job("KD 7,8 only", spec(hidden, config.alpha, temp, epochs, "student"), "only78", True)],
        transfers["only78"],
        teacher=teacher,
    )
    # What the T^2 factor does once the hard labels are in the loss: without it, at T = 20 the
    # soft targets' gradients are 400 times smaller than the paper intends
    stages["t2"] = lab.train(
        [
            job(
                f"KD No3 T2 {state}",
                spec(hidden, ABLATION_ALPHA, temp, epochs, "student", t2=on),
                "no3",
                True,
            )
            for state, on in (("on", True), ("off", False))
        ],
        transfers["no3"],
        teacher=teacher,
    )
    for name in ("students", "no3", "only78", "t2"):
        _report_stage(name, stages[name], opts)

    # The T-sweep: small students at every temperature, with a hard-label baseline per width
    sweep_jobs, sweep_index = [], []
    for width in config.sweep_widths:
        h = (width, width)
        sweep_jobs.append(
            job(f"Hard {width}", spec(h, 0.0, 1.0, config.resolved("sweep_epochs"), "sweep"), "all", False)
        )
        sweep_index.append((width, None))
        for t in config.sweep_temperatures:
            s = spec(h, config.alpha, t, config.resolved("sweep_epochs"), "sweep")
            sweep_jobs.append(job(f"KD {width} T={t:g}", s, "all", True))
            sweep_index.append((width, t))
    stages["sweep"] = lab.train(sweep_jobs, transfers["all"], teacher=teacher)
    _report_stage("sweep", stages["sweep"], opts)

    # Test errors, and the bias shifts
    test_logits = lab.logits
    teacher_test = teacher.test_logits
    students = {m.name: m for name in ("students", "no3", "only78", "t2") for m in stages[name].models}
    logits = dict(zip(students, test_logits(list(students.values()))))
    evals = {name: evaluation(v[None], y_test, num_classes)[0] for name, v in logits.items()}
    evals["Teacher"] = evaluation(teacher_test[None], y_test, num_classes)[0]
    n_test = len(y_test)
    others = tuple(c for c in range(num_classes) if c not in KEPT)

    def errors_at(name: str, moved: tuple[int, ...], shift: float) -> tuple[int, int]:
        """Test errors (all, on the classes `moved`) after adding `shift` to their biases."""
        overall, on_moved = accuracy_at(logits[name], y_test, moved, torch.tensor([float(shift)]))
        n_moved = int(torch.isin(y_test, torch.tensor(moved, device=lab.device)).sum())
        return round(n_test * (1 - float(overall[0]))), round(n_moved * (1 - float(on_moved[0])))

    # the label-free shifts: no test label is read, only the test images and the training labels
    trained_on = y[rows]
    shifts_3 = {
        "paper": PAPER_SHIFT_3,
        "best on test": best_shift(logits["KD No3"], y_test, (OMITTED,)),
        "prior matching": prior_matching_or_none(logits["KD No3"], teacher_test, (OMITTED,)),
        "prediction share": prediction_share_shift(
            logits["KD No3"], (OMITTED,), label_share(trained_on, (OMITTED,))
        ),
    }
    # lowering 7 and 8 by d is raising every other class by d: softmax ignores a common shift
    shifts_78 = {
        "paper": PAPER_SHIFT_78,
        "best on test": -best_shift(logits["KD 7,8 only"], y_test, others),
        "prior matching": _negated(prior_matching_or_none(logits["KD 7,8 only"], teacher_test, others)),
        "prediction share": -prediction_share_shift(
            logits["KD 7,8 only"], others, label_share(trained_on, others)
        ),
    }
    sweep_errors = []
    for width in config.sweep_widths:  # one stack per width
        models = [m for m, (w, _) in zip(stages["sweep"].models, sweep_index) if w == width]
        sweep_errors += (test_logits(models).argmax(-1) != y_test).sum(1).tolist()
    sweep = _sweep_table(sweep_index, sweep_errors)

    seconds = {name: stage.training_seconds for name, stage in stages.items()}
    reused = {name: stage.reused for name, stage in stages.items()}
    t3 = int((y_test == OMITTED).sum())
    rows_out = [
        _row(
            "teacher 784-1200-1200-10 (dropout, max-norm, 2-px jitter)",
            67,
            evals["Teacher"]["errors"],
            "errors",
            "teacher",
            seconds,
            reused,
        ),
        _row(
            "784-800-800-10, no regularisation, hard labels",
            146,
            evals["Hard"]["errors"],
            "errors",
            "students",
            seconds,
            reused,
        ),
        _row(
            f"784-800-800-10 distilled at T={temp:g}",
            74,
            evals["KD"]["errors"],
            "errors",
            "students",
            seconds,
            reused,
        ),
        _row(
            "same, transfer set without any 3",
            206,
            evals["KD No3"]["errors"],
            "errors",
            "no3",
            seconds,
            reused,
        ),
        _row(
            f"… of them on the {t3} test 3s",
            133,
            errors_at("KD No3", (OMITTED,), 0.0)[1],
            "errors",
            "no3",
            seconds,
            reused,
        ),
    ]
    for how, shift in shifts_3.items():
        if shift is None:  # prior matching found no shift: the rows say so
            for suffix in ("", ": errors on 3s"):
                label = f"… bias of 3 raised ({how}){suffix}"
                rows_out.append(_row(label, None, NOT_FOUND, "errors", "no3", seconds, reused))
            continue
        total, on3 = errors_at("KD No3", (OMITTED,), shift)
        label = f"… bias of 3 raised by {shift:+.2f} ({how})"
        rows_out.append(_row(label, 109 if how == "paper" else None, total, "errors", "no3", seconds, reused))
        rows_out.append(
            _row(
                f"{label}: errors on 3s",
                14 if how == "paper" else None,
                on3,
                "errors",
                "no3",
                seconds,
                reused,
            )
        )
    rows_out.append(
        _row(
            "transfer set holding only 7s and 8s",
            47.3,
            100 * evals["KD 7,8 only"]["errors"] / n_test,
            "% error",
            "only78",
            seconds,
            reused,
        )
    )
    for how, shift in shifts_78.items():
        if shift is None:
            label = f"… biases of 7 and 8 moved ({how})"
            rows_out.append(_row(label, None, NOT_FOUND, "% error", "only78", seconds, reused))
            continue
        total, _ = errors_at("KD 7,8 only", KEPT, shift)
        rows_out.append(
            _row(
                f"… biases of 7 and 8 moved by {shift:+.2f} ({how})",
                13.2 if how == "paper" else None,
                100 * total / n_test,
                "% error",
                "only78",
                seconds,
                reused,
            )
        )
    for state in ("on", "off"):
        name = f"KD No3 T2 {state}"
        total, on3 = errors_at(name, (OMITTED,), PAPER_SHIFT_3)
        label = f"no 3s, hard labels weighted {1 - ABLATION_ALPHA:.1f}, T² {state}, bias of 3 +3.50"
        rows_out.append(_row(label, None, total, "errors", "t2", seconds, reused))
        rows_out.append(_row(f"{label}: errors on 3s", None, on3, "errors", "t2", seconds, reused))
    rows_out += _sweep_rows(sweep, seconds, reused)
    return write_hinton2015_outputs(
        config=config,
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
        provenance=lab.provenance,
        wall_time_s=time.perf_counter() - start,
        models={name: stage.models for name, stage in stages.items()},
    )


def make_spec(
    config: Hinton2015Config, data, hidden, alpha, temperature, epochs, role, **regularisers
) -> TrainSpec:
    """One model's training settings: the students' optimiser and no regulariser unless
    `regularisers` say otherwise (the teacher's); jittered transfer sets for distilled students
    when `--jitter-transfer` is on."""
    optimizer = regularisers.pop("optimizer", config.student_optimizer)
    return TrainSpec(
        sizes=(data.num_features, *hidden, len(data.classes)),
        epochs=epochs,
        batch_size=config.batch_size,
        lr=regularisers.pop("lr", config.student_lr),
        alpha=alpha,
        temperature=temperature if alpha > 0 else 1.0,
        t2=regularisers.pop("t2", config.t2) and alpha > 0,
        init_seed=derive_seed(config.seed, f"{role}-init"),
        stream_seed=derive_seed(config.seed, f"{role}-stream"),
        optimizer=optimizer,
        momentum=config.momentum if optimizer == "sgd" else 0.0,
        schedule=config.schedule,
        dropout=regularisers.pop("dropout", 0.0),
        jitter=regularisers.pop("jitter", config.jitter if config.jitter_transfer and alpha > 0 else 0),
        **regularisers,
    )


def prior_matching_or_none(
    student: torch.Tensor, teacher: torch.Tensor, omit: tuple[int, ...]
) -> float | None:
    """The prior-matching shift, or None where none in [-100, 100] matches: found only after
    every model has trained, so the row reports it rather than the run failing."""
    try:
        return prior_matching_shift(student, teacher, omit)
    except KdlabError:
        return None


def _negated(shift: float | None) -> float | None:
    return None if shift is None else -shift


def _row(experiment, paper, kdlab, unit: str, stage: str, seconds: dict, reused: dict) -> dict:
    """One line of the side-by-side table; `stage` names the training it needed, whose recorded
    training time is the row's time."""
    numeric = isinstance(paper, (int, float)) and isinstance(kdlab, (int, float))
    return {
        "experiment": experiment,
        "paper": paper,
        "kdlab": kdlab,
        "difference": kdlab - paper if numeric else None,
        "unit": unit,
        "stage": stage,
        "stage_seconds": seconds[stage],
        "reused": reused[stage],
    }


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


def _sweep_rows(sweep: dict, seconds: dict, reused: dict) -> list[dict]:
    """The paper's qualitative T-sweep claims, each as a measured row."""
    rows = []
    for width, entry in sweep.items():
        temps, errors = entry["temperature"], entry["errors"]
        best = temps[min(range(len(temps)), key=errors.__getitem__)]
        high = [e for t, e in zip(temps, errors) if t >= 8]
        rows.append(
            _row(
                f"{width}-unit students: best T",
                "2.5–4" if int(width) < 300 else "any above 8",
                best,
                "T",
                "sweep",
                seconds,
                reused,
            )
        )
        if high:
            rows.append(
                _row(
                    f"{width}-unit students: errors over T ≥ 8 (min–max)",
                    "similar" if int(width) >= 300 else None,
                    f"{min(high)}–{max(high)}",
                    "errors",
                    "sweep",
                    seconds,
                    reused,
                )
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
