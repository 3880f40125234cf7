"""Every class as the mythical one: the no-3 experiment repeated for each class in turn.

One teacher (trained once, reused) teaches, for each omitted class d, a Norm and a KD student
per seed on the training set without d; each is then calibrated. The table answers which
classes the teacher's dark knowledge can teach without a single example.
"""

from __future__ import annotations

import time

from kdlab.config import RunOptions
from kdlab.protocols.study import open_study
from kdlab.reporting.every_digit import analyse, render
from kdlab.result import Result
from kdlab.settings.every_digit import NAME, EveryDigitConfig


def run(config: EveryDigitConfig, opts: RunOptions) -> Result:
    start = time.perf_counter()
    study = open_study(config, opts, NAME, omit_fields=("classes",))
    config, names = study.config, study.data.classes
    omitted = [names.index(c) for c in config.classes] if config.classes else list(range(len(names)))
    rows, models = [], {"Teacher": [study.teacher]}
    for digit in omitted:
        tag = f"No{names[digit]}"
        norm, kd = study.students((digit,), (f"Norm {tag}", f"KD {tag}"))
        models[f"Norm {tag}"], models[f"KD {tag}"] = norm, kd
        test_logits = study.logits(norm + kd, study.x_test)
        on_digit = study.y_test == digit
        before = (test_logits[:, on_digit].argmax(-1) == digit).double().mean(1) * 100
        overall = (test_logits.argmax(-1) == study.y_test).double().mean(1) * 100
        n = len(norm)
        rows.append(
            {
                "class": names[digit],
                "index": digit,
                "test_images": int(on_digit.sum()),
                "before": {"Norm": before[:n].tolist(), "KD": before[n:].tolist()},
                "overall_before": {"Norm": overall[:n].tolist(), "KD": overall[n:].tolist()},
                "calibration": {"Norm": study.calibrate(norm, (digit,)), "KD": study.calibrate(kd, (digit,))},
                "wall_time_s": norm[0].record["group_wall_time_s"],
                "reused": norm[0].reused and kd[0].reused,
            }
        )
    analysed = analyse(
        config=config,
        seeds=config.student_seeds(),
        rows=rows,
        teacher_accuracy=100 * float((study.teacher_test_logits.argmax(-1) == study.y_test).double().mean()),
        provenance=study.provenance,
        wall_time_s=time.perf_counter() - start,
        models=models,
    )
    return render(analysed, config, models)
