"""The mythical-digit experiment (Hinton, Vinyals & Dean 2015, section 3).

A teacher learns all classes. Students learn from hard labels ("Norm") or by distillation
("KD"), once on all training data and once on a transfer set with every example of the
omitted classes removed ("No3"). Raising the omitted classes' output biases afterwards
("+B") shows how much the KD student learned about a class it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from kdlab.evaluation import Score
from kdlab.protocols.common import Lab
from kdlab.protocols.contract import Measured, Protocol
from kdlab.protocols.study import open_study, shift_output_bias
from kdlab.reporting import mythical_digit as reporting
from kdlab.reporting.mythical_digit import Columns
from kdlab.settings.mythical_digit import HELP, METRICS, NAME, MythicalDigitConfig


@dataclass
class MythicalDigitMeasured(Measured):
    columns: Columns
    classes: tuple[str, ...]
    omit: tuple[int, ...]
    evaluations: dict[str, list[Score]]  # per column, one test score per seed
    calibration: dict[str, dict]  # per No-omit column, every strategy's shifts and accuracies
    bias_curves: dict[str, dict]
    test_counts: list[int]

    def trained(self) -> dict[str, list]:
        return {name: self.models[name] for name in [self.columns.teacher, *self.columns.students]}


def measure(lab: Lab, config: MythicalDigitConfig) -> MythicalDigitMeasured:
    """Train (or reuse) the teacher and the students of every seed, evaluate the seven columns."""
    study = open_study(lab, config)
    classes = study.data.classes
    omit = tuple(classes.index(name) for name in config.omit)
    cols = Columns.of(list(config.omit))
    trained = {cols.teacher: [study.teacher]}
    trained[cols.norm], trained[cols.kd] = study.students((), (cols.norm, cols.kd))
    trained[cols.norm_no], trained[cols.kd_no] = study.students(omit, (cols.norm_no, cols.kd_no))

    # +B: the No-omit students with the omitted classes' output biases raised by the shift
    # the first calibration strategy chose for each of them
    calibration = {col: study.calibrate(trained[col], omit) for col in (cols.norm_no, cols.kd_no)}
    first = config.calibration[0]
    for src, dst in ((cols.norm_no, cols.norm_b), (cols.kd_no, cols.kd_b)):
        shifts = calibration[src][first]["shift"]
        trained[dst] = [
            replace(m, state=shift_output_bias(m.state, omit, s)) for m, s in zip(trained[src], shifts)
        ]

    evaluations = {cols.teacher: lab.evaluate([study.teacher])}
    rest = cols.all[1:]
    scored = lab.evaluate([m for c in rest for m in trained[c]])
    for c in rest:
        evaluations[c], scored = scored[: len(trained[c])], scored[len(trained[c]) :]
    grid = torch.linspace(-2.0, 12.0, 141)
    curves = {col: study.bias_curves(trained[col], omit, grid) for col in (cols.norm_no, cols.kd_no)}
    return MythicalDigitMeasured(
        settings=config,
        models=trained,
        columns=cols,
        classes=classes,
        omit=omit,
        evaluations=evaluations,
        calibration=calibration,
        bias_curves=curves,
        test_counts=torch.bincount(study.y_test, minlength=len(classes)).tolist(),
    )


PROTOCOL = Protocol(NAME, HELP, MythicalDigitConfig, measure, reporting.analyse, reporting.render, METRICS)
