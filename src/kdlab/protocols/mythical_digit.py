"""The mythical-digit experiment (Hinton, Vinyals & Dean 2015, section 3).

A teacher learns all classes. Students learn from hard labels ("Norm") or by distillation
("KD"), once on all training data and once on a transfer set with every example of the
omitted classes removed ("No3"). Raising the omitted classes' output biases afterwards
("+B") shows how much the KD student learned about a class it never saw.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from kdlab.config import RunOptions
from kdlab.protocols.study import evaluation, open_study, shift_output_bias
from kdlab.reporting.mythical_digit import analyse, render
from kdlab.result import Result
from kdlab.settings.mythical_digit import NAME, MythicalDigitConfig


def columns(omit_names: list[str]) -> list[str]:
    tag = "No" + ",".join(omit_names)
    return ["Teacher", "Norm", "KD", f"Norm {tag}", f"KD {tag}", f"Norm {tag}+B", f"KD {tag}+B"]


def run(config: MythicalDigitConfig, opts: RunOptions) -> Result:
    """Train (or reuse) the teacher and the students of every seed, evaluate the seven columns."""
    start = time.perf_counter()
    study = open_study(config, opts, NAME, omit_fields=("omit",))
    config, classes = study.config, study.data.classes
    omit = tuple(classes.index(name) for name in config.omit)
    cols = columns(list(config.omit))
    trained = {"Teacher": [study.teacher]}
    trained[cols[1]], trained[cols[2]] = study.students((), (cols[1], cols[2]))
    trained[cols[3]], trained[cols[4]] = study.students(omit, (cols[3], cols[4]))

    # +B: the No-omit students with the omitted classes' output biases raised by the shift
    # the first calibration strategy chose for each of them
    calibration = {col: study.calibrate(trained[col], omit) for col in cols[3:5]}
    first = config.calibration[0]
    for src, dst in ((cols[3], cols[5]), (cols[4], cols[6])):
        shifts = calibration[src][first]["shift"]
        trained[dst] = [
            replace(m, state=shift_output_bias(m.state, omit, s)) for m, s in zip(trained[src], shifts)
        ]

    evaluations = {
        "Teacher": evaluation(study.logits([study.teacher], study.x_test), study.y_test, len(classes))
    }
    students = [m for c in cols[1:] for m in trained[c]]
    scored = evaluation(study.logits(students, study.x_test), study.y_test, len(classes))
    for c in cols[1:]:
        evaluations[c], scored = scored[: len(trained[c])], scored[len(trained[c]) :]
    grid = torch.linspace(-2.0, 12.0, 141)
    curves = {col: study.bias_curves(trained[col], omit, grid) for col in cols[3:5]}
    analysed = analyse(
        config=config,
        seeds=config.student_seeds(),
        columns=cols,
        classes=classes,
        omit=omit,
        evaluations=evaluations,
        models=trained,
        calibration=calibration,
        bias_curves=curves,
        provenance=study.provenance,
        wall_time_s=time.perf_counter() - start,
        test_counts=torch.bincount(study.y_test, minlength=len(classes)).tolist(),
    )
    return render(analysed, config, classes, trained)
