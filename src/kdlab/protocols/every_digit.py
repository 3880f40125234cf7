"""Every class as the mythical one: the no-3 experiment repeated for each class in turn.

One teacher (trained once, reused) teaches, for each omitted class d, a Norm and a KD student
per seed on the training set without d; each is then calibrated. The table answers which
classes the teacher's dark knowledge can teach without a single example.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdlab.protocols.common import Lab
from kdlab.protocols.contract import Measured, Protocol
from kdlab.protocols.study import open_study
from kdlab.reporting import every_digit as reporting
from kdlab.settings.every_digit import HELP, NAME, EveryDigitConfig


@dataclass
class EveryDigitMeasured(Measured):
    rows: list[dict]  # one per omitted class: accuracies before and after each calibration
    teacher_accuracy: float


def measure(lab: Lab, config: EveryDigitConfig) -> EveryDigitMeasured:
    study = open_study(lab, config)
    names = study.data.classes
    omitted = [names.index(c) for c in config.classes] if config.classes else list(range(len(names)))
    rows, models = [], {"Teacher": [study.teacher]}
    for digit in omitted:
        tag = f"No{names[digit]}"
        norm, kd = study.students((digit,), (f"Norm {tag}", f"KD {tag}"))
        models[f"Norm {tag}"], models[f"KD {tag}"] = norm, kd
        scored = lab.evaluate(norm + kd)
        before = [100 * s.per_class[digit] for s in scored]
        overall = [100 * s.accuracy for s in scored]
        n = len(norm)
        rows.append(
            {
                "class": names[digit],
                "index": digit,
                "test_images": int((lab.y_test == digit).sum()),
                "before": {"Norm": before[:n], "KD": before[n:]},
                "overall_before": {"Norm": overall[:n], "KD": overall[n:]},
                "calibration": {"Norm": study.calibrate(norm, (digit,)), "KD": study.calibrate(kd, (digit,))},
                "wall_time_s": norm[0].record["group_wall_time_s"],
                "reused": norm[0].reused and kd[0].reused,
            }
        )
    return EveryDigitMeasured(config, models, rows, 100 * lab.evaluate([study.teacher])[0].accuracy)


PROTOCOL = Protocol(NAME, HELP, EveryDigitConfig, measure, reporting.analyse, reporting.render)
