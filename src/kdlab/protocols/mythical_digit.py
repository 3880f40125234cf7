"""The mythical-digit experiment (Hinton, Vinyals & Dean 2015, section 3).

A teacher learns all classes. Students learn from hard labels ("Norm") or by distillation
("KD"), once on all training data and once on a transfer set with every example of the
omitted classes removed ("No3"). Raising the omitted classes' output biases afterwards
("+B") shows how much the KD student learned about a class it never saw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from kdlab import KdlabError
from kdlab.config import RunOptions, option, to_dict
from kdlab.data import Dataset, load_dataset
from kdlab.protocols.common import (
    ModelJob,
    TrainedModel,
    derive_seed,
    prepare_out,
    provenance,
    setup_torch,
    stack,
    train_or_load,
)
from kdlab.reporting import write_mythical_digit_outputs
from kdlab.training.engine import TrainSpec, predict, score
from kdlab.training.store import ModelStore

NAME = "mythical-digit"


@dataclass(frozen=True)
class MythicalDigitConfig:
    """Settings of the mythical-digit experiment; the defaults are the published protocol."""

    dataset: str = option("mnist", "data set")
    epochs: int = option(10, "training epochs of the teacher and of every student")
    omit: tuple[str, ...] = option(("3",), "classes (indices or names) left out of the transfer set")
    bias: float = option(3.5, "added to the output bias of each omitted class after training (+B)")
    seed: int = option(0, "seed of the teacher and of the first student seed")
    seeds: tuple[int, ...] = option(
        (1,), "students per column: a count N (seeds seed..seed+N-1) or an explicit list of seeds"
    )
    batch_size: int = option(128, "mini-batch size of every model")
    temperature: float = option(4.0, "distillation temperature T")
    alpha: float = option(0.9, "weight of the soft-target term; 1 - alpha weighs the hard labels")
    lr: float = option(1e-3, "Adam learning rate")
    dropout: float = option(0.5, "dropout after each hidden layer, teacher and students")
    t2: bool = option(True, "scale the soft-target term by T^2, as the paper does")
    teacher_hidden: tuple[int, ...] = option((1200, 1200), "hidden layer widths of the teacher")
    student_hidden: tuple[int, ...] = option((300, 300), "hidden layer widths of the students")
    val_size: int = option(
        0,
        "training images held out for the validation curves "
        "(0: monitor the test set, never used for any choice)",
    )
    subset: int = option(0, "train on only the first N training images (0: all); for smoke tests")

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, not {self.epochs}"),
            (self.temperature > 0, f"temperature must be > 0, not {self.temperature}"),
            (0.0 <= self.alpha <= 1.0, f"alpha must be in [0, 1], not {self.alpha}"),
            (self.lr > 0, f"lr must be > 0, not {self.lr}"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), not {self.dropout}"),
            (len(self.seeds) > 1 or self.seeds[0] >= 1, f"seeds must be >= 1, not {self.seeds[0]}"),
            (len(set(self.seeds)) == len(self.seeds), "seeds must not repeat"),
            (self.batch_size >= 1, f"batch size must be >= 1, not {self.batch_size}"),
            (len(self.omit) >= 1, "omit needs at least one class"),
            (self.val_size >= 0, f"val size must be >= 0, not {self.val_size}"),
            (self.subset >= 0, f"subset must be >= 0, not {self.subset}"),
            (
                all(w >= 1 for w in self.teacher_hidden + self.student_hidden),
                "hidden layer widths must be >= 1",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise KdlabError(message)

    def student_seeds(self) -> list[int]:
        if len(self.seeds) == 1:
            return [self.seed + i for i in range(self.seeds[0])]
        return list(self.seeds)


def resolve_classes(names: tuple[str, ...], classes: tuple[str, ...]) -> tuple[int, ...]:
    """Class indices for names or indices given by the user; unknown ones are an error."""
    resolved = []
    for name in names:
        token = str(name).strip()
        if token in classes:
            index = classes.index(token)
        elif token.isdigit() and int(token) < len(classes):
            index = int(token)
        else:
            raise KdlabError(f"unknown class {token!r} in --omit; classes are {', '.join(classes)}")
        if index not in resolved:
            resolved.append(index)
    if len(resolved) == len(classes):
        raise KdlabError("--omit removes every class: the transfer set would be empty")
    return tuple(sorted(resolved))


def columns(omit_names: list[str]) -> list[str]:
    tag = "No" + ",".join(omit_names)
    return ["Teacher", "Norm", "KD", f"Norm {tag}", f"KD {tag}", f"Norm {tag}+B", f"KD {tag}+B"]


def split_rows(config: MythicalDigitConfig, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Training rows and (optionally) held-out validation rows of the training set."""
    if config.val_size >= n:
        raise KdlabError(f"val size {config.val_size} leaves no training images (of {n})")
    rows = torch.arange(n)
    val = None
    if config.val_size:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(config.seed, "val")))
        rows, val = perm[config.val_size :].sort().values, perm[: config.val_size].sort().values
    if config.subset:
        rows = rows[: config.subset]
    return rows, val


def shift_output_bias(state: dict[str, torch.Tensor], classes: tuple[int, ...], value: float) -> dict:
    """A copy of an MLP state with `value` added to the output bias of `classes`."""
    last = max(int(k[1:]) for k in state if k.startswith("b"))
    shifted = dict(state)
    bias = state[f"b{last}"].clone()
    bias[list(classes)] += value
    shifted[f"b{last}"] = bias
    return shifted


def run(config: MythicalDigitConfig, opts: RunOptions) -> dict:
    """Train (or reuse) the teacher and the students of every seed, evaluate the seven columns."""
    start = time.perf_counter()
    device = setup_torch(opts)
    out = opts.out or Path("runs") / NAME
    data: Dataset = load_dataset(config.dataset, opts.data_dir, opts.download, opts.quiet)
    omit = resolve_classes(config.omit, data.classes)
    omit_names = [data.classes[c] for c in omit]
    config = replace(config, omit=tuple(omit_names))
    seeds = config.student_seeds()
    prepare_out(out, NAME, config.dataset)
    store = ModelStore(out / "models")
    num_classes = len(data.classes)

    x, y = data.x_train.to(device), data.y_train.to(device)
    rows, val_rows = split_rows(config, len(x))
    rows = rows.to(device)
    if val_rows is None:  # monitor the test set: curves only, never a choice
        x_val, y_val, val_name = data.x_test.to(device), data.y_test.to(device), "test set"
    else:
        x_val, y_val, val_name = x[val_rows.to(device)], y[val_rows.to(device)], "validation split"
    omitted = torch.tensor(omit, device=device)
    seen_val = ~torch.isin(y_val, omitted)  # the No-omit students are monitored on the classes they see
    rows_id = {
        "data_sha256": data.hashes,
        "val_size": config.val_size,
        "subset": config.subset,
        "split_seed": config.seed,
    }
    prov = provenance(to_dict(config), data.hashes)

    def spec(hidden: tuple[int, ...], alpha: float, role: str, seed: int) -> TrainSpec:
        return TrainSpec(
            sizes=(data.num_features, *hidden, num_classes),
            dropout=config.dropout,
            epochs=config.epochs,
            batch_size=config.batch_size,
            lr=config.lr,
            alpha=alpha,
            temperature=config.temperature,
            t2=config.t2,
            init_seed=derive_seed(seed, f"{role}-init"),
            stream_seed=derive_seed(seed, f"{role}-stream"),
        )

    common = dict(store=store, opts=opts, x=x, y=y, num_classes=num_classes, provenance=prov)
    teacher_job = ModelJob(
        "Teacher",
        spec(config.teacher_hidden, 0.0, "teacher", config.seed),
        {"rows": rows_id, "transfer_omit": [], "monitor": val_name},
        config.seed,
    )
    teacher = train_or_load(
        [teacher_job], transfer=rows, teacher_logits=None, x_val=x_val, y_val=y_val, **common
    )[0]
    teacher_logits = predict(stack([teacher], device), x)[0]  # once: no augmentation, so exact

    # students: Norm and KD of every seed share a transfer set, so they train as one group;
    # seed s of Norm and of KD share initialisation, data order and dropout masks (paired)
    cols = columns(omit_names)
    trained: dict[str, list[TrainedModel]] = {"Teacher": [teacher]}
    transfer_sets = [
        (rows, [], cols[1:3], x_val, y_val, val_name),
        (
            rows[~torch.isin(y[rows], omitted)],
            list(omit),
            cols[3:5],
            x_val[seen_val],
            y_val[seen_val],
            f"{val_name} without class {', '.join(omit_names)}",
        ),
    ]
    for transfer, left_out, (norm_name, kd_name), xv, yv, monitor in transfer_sets:
        identity = {"rows": rows_id, "transfer_omit": left_out, "monitor": monitor}
        jobs = [
            ModelJob(norm_name, spec(config.student_hidden, 0.0, "student", s), identity, s) for s in seeds
        ]
        jobs += [
            ModelJob(
                kd_name,
                spec(config.student_hidden, config.alpha, "student", s),
                {**identity, "teacher": teacher_job.key},
                s,
            )
            for s in seeds
        ]
        models = train_or_load(
            jobs, transfer=transfer, teacher_logits=teacher_logits, x_val=xv, y_val=yv, **common
        )
        trained[norm_name], trained[kd_name] = models[: len(seeds)], models[len(seeds) :]

    # the +B columns: the No-omit students with the omitted classes' output biases raised
    for src, dst in ((cols[3], cols[5]), (cols[4], cols[6])):
        trained[dst] = [replace(m, state=shift_output_bias(m.state, omit, config.bias)) for m in trained[src]]

    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    evaluations: dict[str, list[dict]] = {}
    for group in (["Teacher"], cols[1:]):
        models = [m for c in group for m in trained[c]]
        scored = score(predict(stack(models, device), x_test), y_test, num_classes)
        k = 0
        for c in group:
            evaluations[c] = []
            for _ in trained[c]:
                evaluations[c].append(
                    {
                        "per_class": scored.per_class[k].tolist(),
                        "accuracy": float(scored.accuracy[k]),
                        "errors": int(scored.errors[k]),
                        "loss": float(scored.loss[k]),
                    }
                )
                k += 1
    return write_mythical_digit_outputs(
        out=out,
        config=config,
        seeds=seeds,
        columns=cols,
        classes=data.classes,
        omit=omit,
        evaluations=evaluations,
        models=trained,
        provenance=prov,
        wall_time_s=time.perf_counter() - start,
        test_counts=torch.bincount(data.y_test, minlength=num_classes).tolist(),
        quiet=opts.quiet,
    )
