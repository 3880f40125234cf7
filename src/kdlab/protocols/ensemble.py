"""Distilling an ensemble into one model (Hinton, Vinyals & Dean 2015, section 4), on open data.

N members of one architecture, each with its own initialisation and data order, train as one
group on hard labels with dropout and jitter, the regularisation of the paper's MNIST teacher.
Every student trains with the members' recipe (its widths may be narrower): a hard-label
student is one more member, so the targets are all that sets the students apart. The ensemble
predicts with the arithmetic mean of the members' probabilities (the paper's) and with their
geometric mean. Students learn from the ensemble's soft targets, from one member's (the
control: is it the ensemble's knowledge, or soft targets as such?) and from the hard labels
alone. Each teacher's T and soft-target weight are chosen on a validation split that no model
trains on; the other seeds then train at that choice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from kdlab.errors import KdlabError
from kdlab.evaluation import ensemble_logits, scores
from kdlab.protocols.common import Lab, ModelJob, data_identity, group_memory_bytes, train_spec, views_mb
from kdlab.protocols.contract import Measured, Protocol
from kdlab.reporting import ensemble as reporting
from kdlab.result import Stage
from kdlab.seeds import derive_seed
from kdlab.settings.ensemble import HELP, METRICS, NAME, EnsembleConfig
from kdlab.training.engine import EnsembleTargets, Monitor, TrainSpec
from kdlab.training.store import TrainedModel

TEACHERS = {"distilled": "Distilled", "one_member": "One member"}  # key -> the students' name


@dataclass
class Split:
    """The rows the models train on, and the validation split no model trains on."""

    train: torch.Tensor
    val: torch.Tensor
    identity: dict  # what the rows depend on: every model's identity holds it


@dataclass
class EnsembleMeasured(Measured):
    seeds: list[int]
    split: dict  # train and validation sizes
    members: dict  # each member's test accuracy (%) and errors
    ensembles: list[dict]  # per ensemble size: accuracy (%) and errors of disjoint ensembles, by mean
    students: dict  # per kind (distilled, one_member, hard): per seed test accuracy (%) and errors
    choices: dict  # per teacher: every candidate's (T, alpha) and validation accuracy, and the choice
    stages: dict[str, Stage]


def split_rows(lab: Lab, config: EnsembleConfig) -> Split:
    """A seeded validation split of the first `subset` training images; the rest train."""
    n, val_size = config.resolved("subset") or len(lab.y), config.resolved("val_size")
    perm = torch.randperm(
        n, generator=torch.Generator().manual_seed(derive_seed(config.seed, "ensemble-val"))
    )
    val, train = perm[:val_size].sort().values, perm[val_size:].sort().values
    identity = {
        **data_identity(lab.data, lab.device),
        "subset": config.resolved("subset"),
        "val_size": val_size,
        "split_seed": config.seed,
    }
    return Split(train.to(lab.device), val.to(lab.device), identity)


def spec(
    lab: Lab, config: EnsembleConfig, role: str, seed: int, alpha: float = 0.0, temperature: float = 1.0
) -> TrainSpec:
    """A member (role `member<m>`) or a student (role `student`): one recipe, but for the
    students' widths and, with `--student-jitter none`, their unmoved images."""
    student = role == "student"
    jitter = 0 if student and config.student_jitter == "none" else config.jitter
    return train_spec(
        lab.data,
        config.student_hidden if student else config.hidden,
        role,
        seed,
        arch=config.arch,
        epochs=config.resolved("student_epochs" if student else "member_epochs"),
        batch_size=config.batch_size,
        lr=config.lr,
        optimizer=config.optimizer,
        momentum=config.momentum if config.optimizer != "adam" else 0.0,
        schedule=config.schedule,
        dropout=config.dropout,
        input_dropout=config.input_dropout,
        max_norm=config.max_norm,
        jitter=jitter,
        alpha=alpha,
        temperature=temperature,
        t2=config.t2,
    )


def check_memory(lab: Lab, config: EnsembleConfig, specs: list[TrainSpec], rows: int) -> None:
    """A model that alone needs more than the memory budget, or consistent soft targets of more
    than it (the members' logits on every shift of every transfer image), are refused before
    anything trains."""
    budget = lab.opts.memory_mb
    for s in specs:
        need = group_memory_bytes(s, lab.data.image_shape) / 2**20
        if need > budget:
            widths = "-".join(map(str, s.sizes[1:-1]))
            raise KdlabError(
                f"a model of widths {widths} needs about {need:.0f} MB to train, more than --memory-mb "
                f"{budget}: choose narrower widths or a larger budget"
            )
    if config.student_jitter == "consistent":
        need = views_mb(config.members, rows, config.jitter, lab.num_classes)
        if need > budget:
            raise KdlabError(
                f"consistent soft targets of {config.members} members on {rows} images need about "
                f"{need:.0f} MB, more than --memory-mb {budget}: give a larger budget, fewer members "
                "or --student-jitter stored"
            )


@dataclass
class Students:
    """How the students of one teacher (or of none) are trained: their jobs by name and settings."""

    lab: Lab
    config: EnsembleConfig
    split: Split
    monitor: Monitor
    teachers: list[TrainedModel]  # empty: hard labels
    targets: Callable[[], EnsembleTargets] | None = None  # the teachers' soft targets, made on demand

    def identity(self) -> dict:
        if not self.teachers:
            return {"rows": self.split.identity, "monitor": self.monitor.name}
        return {
            "rows": self.split.identity,
            "monitor": self.monitor.name,
            "teachers": [m.record["weights_sha256"] for m in self.teachers],
            "targets": "arithmetic mean",
            "student_jitter": self.config.student_jitter,
        }

    def job(self, name: str, seed: int, alpha: float = 0.0, temperature: float = 1.0) -> ModelJob:
        return ModelJob(
            name, spec(self.lab, self.config, "student", seed, alpha, temperature), self.identity(), seed
        )

    def train(self, jobs: list[ModelJob]) -> Stage:
        """Train (or reuse) `jobs`; the soft targets are made only when one of them trains."""
        return self.lab.train(jobs, self.split.train, self.monitor, self.targets)


class MemberTargets:
    """The soft targets of the first k members, for any k: the members' logits on every training
    image (and, for consistent students, on every shift of the transfer set) computed once for
    all of them, and only when a distilled student trains."""

    def __init__(self, lab: Lab, config: EnsembleConfig, split: Split, members: list[TrainedModel]):
        self.lab, self.config, self.split, self.members = lab, config, split, members

    @functools.cached_property
    def logits(self) -> torch.Tensor:
        return self.lab.logits(self.members, self.lab.x)  # [M, N, C]

    @functools.cached_property
    def views(self) -> torch.Tensor | None:
        if self.config.student_jitter != "consistent":
            return None
        return self.lab.shifted_logits(self.members, self.split.train, self.config.jitter)

    def of_first(self, k: int) -> EnsembleTargets:
        position = torch.full((len(self.lab.x),), -1, dtype=torch.long, device=self.lab.device)
        position[self.split.train] = torch.arange(len(self.split.train), device=self.lab.device)
        views = None if self.views is None else self.views[:, :k]
        return EnsembleTargets(self.logits[:k], None, views, position, self.config.jitter)


def choose(lab: Lab, students: Students, name: str, val: tuple) -> tuple[dict, Stage]:
    """Every (T, alpha) candidate at the first seed, scored on the validation split: the most
    accurate is chosen (the first in the grid's order on ties)."""
    config = students.config
    grid = [(t, a) for t in config.temperatures for a in config.alphas]
    jobs = [students.job(f"{name} T={t:g} alpha={a:g}", config.seed, a, t) for t, a in grid]
    stage = students.train(jobs)
    if len(val[1]) == 0:  # one candidate (the settings allow no split otherwise): nothing to score
        return {
            "candidates": [{"temperature": grid[0][0], "alpha": grid[0][1], "val_accuracy": None}],
            "chosen": 0,
        }, stage
    accuracy = [100 * s.accuracy for s in lab.evaluate(stage.models, on=val)]
    best = max(range(len(grid)), key=lambda i: (accuracy[i], -i))
    candidates = [{"temperature": t, "alpha": a, "val_accuracy": v} for (t, a), v in zip(grid, accuracy)]
    return {"candidates": candidates, "chosen": best}, stage


def measure(lab: Lab, config: EnsembleConfig) -> EnsembleMeasured:
    """Train (or reuse) the members, choose each teacher's T and alpha, train every student."""
    split = split_rows(lab, config)
    seeds = config.student_seeds()
    members = [spec(lab, config, f"member{m}", config.seed) for m in range(config.members)]
    check_memory(lab, config, [members[0], spec(lab, config, "student", config.seed)], len(split.train))
    val = (lab.x[split.val], lab.y[split.val])
    # the learning curves: on the validation split, else (no split) on the test set, never read for a choice
    monitor = Monitor(*val, "validation split") if len(split.val) else Monitor(lab.x_test, lab.y_test)
    identity = {"rows": split.identity, "monitor": monitor.name}
    jobs = [ModelJob(f"Member {m}", s, identity, config.seed) for m, s in enumerate(members)]
    stages = {"members": lab.train(jobs, split.train, monitor)}
    trained = stages["members"].models

    choices, students = {}, {}
    targets = MemberTargets(lab, config, split, trained)
    for key, k in (("distilled", len(trained)), ("one_member", 1)):
        taught = Students(lab, config, split, monitor, trained[:k], functools.partial(targets.of_first, k))
        choices[key], stages[f"{key} choice"] = choose(lab, taught, TEACHERS[key], val)
        picked = choices[key]["candidates"][choices[key]["chosen"]]
        first = stages[f"{key} choice"].models[choices[key]["chosen"]]
        more = [
            taught.job(f"{TEACHERS[key]} seed {s}", s, picked["alpha"], picked["temperature"])
            for s in seeds[1:]
        ]
        stages[key] = taught.train(more) if more else Stage([], 0.0, 0.0)
        students[key] = [first, *stages[key].models]
    hard = Students(lab, config, split, monitor, [])
    stages["hard"] = hard.train(
        [hard.job("Hard" if s == config.seed else f"Hard seed {s}", s) for s in seeds]
    )
    students["hard"] = stages["hard"].models

    member_scores = lab.evaluate(trained)
    logits = lab.logits(trained)
    return EnsembleMeasured(
        config,
        {
            "Members": trained,
            **{TEACHERS[k]: v for k, v in students.items() if k in TEACHERS},
            "Hard": students["hard"],
            # the candidates the validation split did not choose: trained, stored, indexed
            "Candidates": [
                m
                for k in TEACHERS
                for i, m in enumerate(stages[f"{k} choice"].models)
                if i != choices[k]["chosen"]
            ],
        },
        seeds,
        {"train": len(split.train), "val": len(split.val)},
        {"accuracy": [100 * s.accuracy for s in member_scores], "errors": [s.errors for s in member_scores]},
        [ensembles_of(lab, logits, size) for size in range(1, config.members + 1)],
        {
            key: {"accuracy": [100 * s.accuracy for s in found], "errors": [s.errors for s in found]}
            for key, found in ((k, lab.evaluate(v)) for k, v in students.items())
        },
        choices,
        stages,
    )


def ensembles_of(lab: Lab, logits: torch.Tensor, size: int) -> dict:
    """The disjoint ensembles of `size` consecutive members (members 0..size-1, then the next
    `size`, ...), each scored on the test set by both means."""
    groups = [list(range(i, i + size)) for i in range(0, len(logits) - size + 1, size)]
    out: dict = {"size": size, "members": groups}
    for mean in ("arithmetic", "geometric"):
        found = scores(ensemble_logits(logits, groups, mean), lab.y_test, lab.num_classes)
        out[mean] = {"accuracy": [100 * s.accuracy for s in found], "errors": [s.errors for s in found]}
    return out


PROTOCOL = Protocol(NAME, HELP, EnsembleConfig, measure, reporting.analyse, reporting.render, METRICS)
