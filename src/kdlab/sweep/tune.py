"""`kdlab tune`: search a space of protocol settings with Ray Tune, then re-validate the winner.

Each trial trains one KD student on the transfer set without the omitted classes (the
teacher comes from the shared store, trained once before the search) and reports, after
every epoch, metrics on the validation split held out of the training set: the search
(Optuna's TPE) and the early-stopping scheduler (ASHA) never see the test set. The winner
and the default configuration are then run as full protocols on the test set over fresh
seeds, paired, so that the gain reported is not an artefact of the selection.

```toml
name = "kd-no3-search"
[base]                             # settings of every trial (val_size > 0 is required)
val_size = 5000
calibration = ["validation"]
[space]                            # one distribution per parameter
temperature = { loguniform = [1, 20] }
alpha = { uniform = [0.1, 1.0] }
student_hidden = { choice = [[30, 30], [300, 300]] }
[tune]
objective = "val_omitted_after"
num_samples = 12
```
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kdlab import protocols
from kdlab.config import to_dict
from kdlab.errors import KdlabError
from kdlab.evaluation import Calibration, scores
from kdlab.evaluation import shift as choose
from kdlab.io import atomic_write_json, atomic_write_text, holding_claims
from kdlab.protocols.contract import open_run
from kdlab.protocols.study import open_study
from kdlab.reporting.stats import mean_ci, paired
from kdlab.reporting.table import cell, markdown
from kdlab.sweep.options import OBJECTIVES, RayOptions, TuneSettings, trial_options
from kdlab.sweep.spec import DEFAULT_PROTOCOL, SweepSpec, load_file, make_config, parse_resources, point_id
from kdlab.sweep.table import cell_text, short_text

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
TOP_KEYS = {"name", "protocol", "base", "space", "tune", "resources", "description"}


@dataclass(frozen=True)
class TuneSpec:
    name: str
    protocol: str
    base: dict[str, Any]
    space: dict[str, dict[str, list]]
    settings: TuneSettings
    resources: dict[str, float]  # RayOptions defaults

    @property
    def config_cls(self) -> type:
        return protocols.get(self.protocol).settings

    def config(self, params: dict[str, Any]) -> Any:
        return make_config(self.config_cls, {**self.base, **params})


def _check_space(space: Any) -> None:
    if not isinstance(space, dict) or not space:
        raise KdlabError("[space] must map each parameter to a distribution")
    for name, dist in space.items():
        if not (isinstance(dist, dict) and len(dist) == 1 and next(iter(dist)) in DISTRIBUTIONS):
            raise KdlabError(
                f"space.{name} must be one of {', '.join(DISTRIBUTIONS)}, e.g. {{ uniform = [0, 1] }}"
            )
        kind, values = next(iter(dist.items()))
        if not isinstance(values, list) or not values or (kind != "choice" and len(values) != 2):
            raise KdlabError(
                f"space.{name}.{kind} needs {'a list of values' if kind == 'choice' else '[low, high]'}"
            )
        if kind == "choice":
            continue
        number = int if kind == "int" else (int, float)
        if not all(isinstance(v, number) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise KdlabError(f"space.{name}.{kind} bounds must be finite numbers, not {values}")
        if not values[0] < values[1] or (kind == "loguniform" and values[0] <= 0):
            raise KdlabError(f"space.{name}.{kind} needs low < high{' and low > 0' * (kind == 'loguniform')}")


def load_tune_spec(path: Path, budget: dict[str, Any], overrides: Any) -> TuneSpec:
    """The search declared in `path`, with budget overrides (`--epochs`, `--num-samples`, ...)."""
    data = load_file(path)
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise KdlabError(
            f"unknown key(s) {', '.join(unknown)} in {path}; allowed: {', '.join(sorted(TOP_KEYS))}"
        )
    protocol = data.get("protocol", DEFAULT_PROTOCOL)
    if protocol != DEFAULT_PROTOCOL:
        raise KdlabError(f"searches support the protocol mythical-digit, not {protocol!r}")
    space = data.get("space")
    _check_space(space)
    clash = sorted(set(budget) & set(space))
    if clash:
        raise KdlabError(f"cannot override searched parameter(s) {', '.join(clash)} from the command line")
    given = {k: v for k, v in dataclasses.asdict(overrides).items() if v is not None}
    try:
        settings = TuneSettings(**{**data.get("tune", {}), **given})
    except TypeError as e:
        raise KdlabError(f"invalid [tune] settings: {e}") from None
    name, base = str(data.get("name", path.stem)), {**data.get("base", {}), **budget}
    spec = TuneSpec(name, protocol, base, space, settings, parse_resources(data.get("resources", {})))
    base = spec.config({})
    if base.val_size <= 0 or base.calibration[0] != "validation":
        raise KdlabError(
            "a search selects on a validation split: set val_size > 0 and calibration = ['validation']"
        )
    for name, dist in space.items():  # the bounds and every choice give a valid config
        for value in next(iter(dist.values())):
            spec.config({name: value})
    return spec


def search_space(space: dict) -> tuple[dict, dict[str, dict[str, Any]]]:
    """Ray Tune's distributions, and for choices of lists (hidden widths) the labels Optuna
    sees mapped back to the values."""
    from ray import tune

    dists, labels = {}, {}
    for name, dist in space.items():
        kind, values = next(iter(dist.items()))
        if kind == "choice":
            labels[name] = {cell_text(v): v for v in values}
            dists[name] = tune.choice(list(labels[name]))
        elif kind == "int":
            dists[name] = tune.randint(int(values[0]), int(values[1]) + 1)
        else:
            dists[name] = getattr(tune, kind)(float(values[0]), float(values[1]))
    return dists, labels


def validation_metrics(
    logits: torch.Tensor, y: torch.Tensor, omit: tuple[int, ...], given: Calibration
) -> dict:
    """One model's logits [1, N, C] on the validation split (labels `y`) before and after the
    validation calibration (the shift best on this split), in %."""
    shift = choose("validation", omit, (logits[0], y), logits[0], given)
    before, after = (scores(logits, y, logits.shape[-1], omit, [s])[0] for s in (0.0, shift))
    return {
        "val_accuracy_before": 100 * before.accuracy,
        "val_omitted_before": 100 * before.omitted,
        "val_accuracy_after": 100 * after.accuracy,
        "val_omitted_after": 100 * after.omitted,
        "val_shift": shift,
    }


@holding_claims()  # a trial's folder is given back when it ends (its worker may live on)
def trial(
    params: dict, spec: TuneSpec, labels: dict, shared: Any, ray_opts: RayOptions, out: Path, models: Path
):
    """One Ray Tune trial: a KD student on the transfer set, its validation metrics reported
    after every epoch (ASHA may stop it there)."""
    from ray import tune

    from kdlab.training.engine import predict

    values = {k: labels[k][v] if k in labels else v for k, v in params.items()}
    config = spec.config(values)
    opts = trial_options(shared, ray_opts, out / "trials" / point_id(config), models)
    study = open_study(*open_run(spec.protocol, config, opts))
    omit = tuple(study.data.classes.index(c) for c in study.config.omit)
    student = study.spec(study.config.student_hidden, study.config.alpha, "student", config.seed)
    x_val, y_val = study.val

    given = Calibration(study.teacher_test_logits, 0.0, study.val)

    def report(epoch: int, model, _val) -> None:
        tune.report({"epoch": epoch, **validation_metrics(predict(model, x_val), y_val, omit, given)})

    study.lab.fit([student], study.transfer(omit), study.monitor(omit), study.tutor, on_epoch=report)


def reeval_spec(spec: TuneSpec, winner: dict[str, Any], n: int) -> SweepSpec:
    """The winner and the default as a sweep on `n` fresh student seeds: every trial trained
    seed `config.seed`, so the re-evaluation starts after it."""
    seed = spec.config({}).seed
    return SweepSpec(
        name=f"{spec.name}-reeval",
        protocol=spec.protocol,
        base={**spec.base, "seeds": n, "seed_list": [seed + 1 + i for i in range(n)]},
        grid={},
        explicit=[winner, {}],
        metrics=(OBJECTIVES[spec.settings.objective].test, "kd_accuracy_after", "kd_omitted_before"),
    )


def run_tune(spec: TuneSpec, shared: Any, ray_opts: RayOptions) -> dict:
    from kdlab.sweep.runner import absolute_data_dir, connect, run_sweep, train_teachers

    if shared.tracker:
        raise KdlabError("kdlab tune does not log to a tracker (yet); kdlab run and kdlab sweep do")
    shared = absolute_data_dir(shared)
    out = (ray_opts.out or Path("runs") / "tune" / spec.name).resolve()
    models = (shared.models_dir or out / "models").resolve()
    say = (lambda _msg: None) if shared.quiet else print
    settings = spec.settings
    ray, started = connect(ray_opts, shared.quiet)
    try:
        base = spec.config({})
        train_teachers(ray, spec.protocol, [base], shared, ray_opts, out, models, say)
        start = time.perf_counter()
        trials = search(spec, shared, ray_opts, out, models)
        search_s = time.perf_counter() - start
        finished = [t for t in trials if t["epochs"] == base.epochs] or trials
        winner = max(finished, key=lambda t: t[settings.objective])
        say(
            f"search: {len(trials)} trial(s) in {search_s:.1f} s; best {settings.objective} "
            f"{winner[settings.objective]:.2f} with {winner['params']}"
        )
        check = reeval_spec(spec, winner["params"], settings.reeval_seeds)
        reeval_opts = dataclasses.replace(ray_opts, out=out / "reeval")
        run_sweep(check, dataclasses.replace(shared, models_dir=models, quiet=True), reeval_opts)
    finally:
        if started:
            ray.shutdown()
    return write_tune_report(spec, trials, winner, check, out, search_s, say)


def search(spec: TuneSpec, shared: Any, ray_opts: RayOptions, out: Path, models: Path) -> list[dict]:
    """Run the trials; one dict per trial: params, epochs run, last validation metrics."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    settings = spec.settings
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists, labels = search_space(spec.space)
    trainable = tune.with_resources(
        tune.with_parameters(
            trial, spec=spec, labels=labels, shared=shared, ray_opts=ray_opts, out=out, models=models
        ),
        {"cpu": ray_opts.cpus_per_trial, "gpu": ray_opts.gpus_per_trial},
    )
    epochs = spec.config({}).epochs
    tuner = tune.Tuner(
        trainable,
        param_space=dists,
        tune_config=tune.TuneConfig(
            metric=settings.objective,
            mode="max",
            search_alg=OptunaSearch(seed=settings.search_seed),
            scheduler=ASHAScheduler(
                max_t=epochs,
                grace_period=min(settings.grace_period, epochs),
                reduction_factor=settings.reduction_factor,
            ),
            num_samples=settings.num_samples,
            time_budget_s=settings.time_budget_s or None,
        ),
        run_config=tune.RunConfig(
            name="search",
            storage_path=str(out / "ray"),
            verbose=0 if shared.quiet else 1,
            failure_config=tune.FailureConfig(max_failures=ray_opts.max_retries),
        ),
    )
    with contextlib.ExitStack() as stack:
        if shared.quiet:  # Ray Tune's own printout goes to search.log
            out.mkdir(parents=True, exist_ok=True)
            stack.enter_context(
                contextlib.redirect_stdout(stack.enter_context(open(out / "search.log", "w")))
            )
        grid = tuner.fit()
    trials = []
    for result in grid:
        if result.error is not None or not result.metrics or settings.objective not in result.metrics:
            continue
        params = {k: labels[k][v] if k in labels else v for k, v in result.config.items()}
        metrics = {k: result.metrics[k] for k in (*OBJECTIVES, "val_shift")}
        trials.append({"params": params, "epochs": result.metrics["epoch"], **metrics})
    if not trials:
        raise KdlabError("no trial of the search finished; see the Ray logs under " + str(out / "ray"))
    return trials


def write_tune_report(
    spec: TuneSpec, trials: list[dict], winner: dict, check: SweepSpec, out: Path, search_s: float, say
) -> dict:
    """tune.md and tune.json: every trial, and winner vs default on the test set (paired seeds)."""
    settings = spec.settings
    objective = settings.objective
    names = list(spec.space)
    ranked = sorted(trials, key=lambda t: -t[objective])
    trial_md = markdown(
        [*names, "epochs", *OBJECTIVES],
        [
            [
                *(short_text(t["params"][n]) for n in names),
                str(t["epochs"]),
                *(f"{t[k]:.2f}" for k in OBJECTIVES),
            ]
            for t in ranked
        ],
    )
    points = check.points()
    records = [json.loads((out / "reeval" / "records" / f"{p.id}.json").read_text()) for p in points]
    # the settings as each point ran them, made explicit for the data (a default width is shown)
    folders = [out / "reeval" / "points" / p.id for p in points]
    ran = [json.loads((folder / "results.json").read_text())["config"] for folder in folders]
    test_metrics = check.metrics
    rows = []
    for label, record, config in zip(("winner", "default"), records, ran):
        params = ", ".join(f"{n}={short_text(config[n])}" for n in names)
        rows.append(
            [label, params, *(cell(*mean_ci([r[m] for r in record["rows"]]), 2) for m in test_metrics)]
        )
    test_md = markdown(["configuration", "settings", *test_metrics], rows)
    main = test_metrics[0]
    diff = paired([r[main] for r in records[0]["rows"]], [r[main] for r in records[1]["rows"]])
    seeds = [r["seed"] for r in records[0]["rows"]]
    finding = f"Winner minus default on the test set, {main}: {diff.mean:+.2f}" + (
        f" ± {diff.ci95:.2f} points (95% CI, paired over seeds {seeds}; p = {diff.p_value:.2g})"
        if diff.ci95 is not None
        else f" points (one seed, {seeds})"
    )
    report = "\n".join(
        [
            f"# Search {spec.name}: {objective} (validation split)",
            "",
            f"{len(trials)} trial(s) in {search_s:.0f} s, Optuna TPE + ASHA (grace {settings.grace_period}, "
            f"reduction {settings.reduction_factor}); ranked by the last reported {objective}.",
            "",
            trial_md,
            "## Winner vs default, re-evaluated on the test set",
            "",
            test_md,
            f"- {finding}",
            "",
        ]
    )
    atomic_write_text(out / "tune.md", report)
    result = {
        "objective": objective,
        "trials": ranked,
        "winner": winner,
        "reeval": records,
        "comparison": {"metric": main, "seeds": seeds, **diff.as_dict()},
        "search_s": search_s,
        "base": to_dict(spec.config({})),
    }
    atomic_write_json(out / "tune.json", result)
    say(f"\n{report}\nwrote {out}/ (tune.md, tune.json, reeval/)")
    return result
