"""One validation mechanism for every settings class: types, NaN/inf, bounds, choices, lengths
and repeats give one line naming the setting, from the command line, a config file, sweep and
search files alike.

The bad values are one table derived from the fields' declared checks (`config.option`), run
over every protocol's settings class and the run, sweep and search options. A setting shared
with `StudyConfig` or `RunOptions` is also held to the checks declared there, so a protocol
that re-declares it and drops a bound or a choice fails here."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kdlab import KdlabError, protocols
from kdlab.cli import main
from kdlab.config import RunOptions, cli_name
from kdlab.docs.settings import DocsOptions, ReproduceOptions
from kdlab.settings.every_digit import EveryDigitConfig
from kdlab.settings.hinton2015 import Hinton2015Config
from kdlab.settings.mythical_digit import MythicalDigitConfig
from kdlab.settings.soft_regularizer import SoftRegularizerConfig
from kdlab.settings.study import StudyConfig
from kdlab.sweep.options import Budget, RayOptions, SharedRunOptions, TuneBudget, TuneSettings

PROTOCOLS = {name: protocols.get(name).settings for name in protocols.names()}
OPTIONS = (
    RunOptions,
    SharedRunOptions,
    Budget,
    RayOptions,
    TuneSettings,
    TuneBudget,
    ReproduceOptions,
    DocsOptions,
)
SHARED = {f.name: f for cls in (StudyConfig, RunOptions) for f in dataclasses.fields(cls)}
# settings that may take any value of their type: the reason each is checked elsewhere, or not at all
FREE = {
    "seed": "any integer seeds the run",
    "search_seed": "any integer seeds the search",
    "seed_list": "any integers, checked for repeats",
    "bias": "any shift of the output bias",
    "dataset": "a data set's name or an .npz file, checked when the data load",
    "omit": "class names or indices, checked against the data set's classes",
    "classes": "class names or indices, checked against the data set's classes",
    "device": "cpu, cuda, cuda:N or auto, checked by RunOptions",
    "tracking_uri": "any MLflow URI, checked when the tracker is set up",
    "address": "a Ray address, checked when Ray connects",
    "study": "a published study's name, checked against docs/studies.toml",
}
KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}


@dataclass(frozen=True)
class Bad:
    """A value that `cls` must refuse for its setting `name`, and the one-line error it gives."""

    cls: type
    name: str
    value: Any
    message: str
    exact: bool = True  # False: the setting's shared check, held to its flag only

    @property
    def flag(self) -> str:
        return cli_name(self.name)

    def __str__(self) -> str:
        return f"{self.cls.__name__}-{self.name}={self.value!r}"

    def check(self, error: str) -> bool:
        return error == self.message if self.exact else error.startswith(self.flag + " ")


def field_type(cls: type, name: str) -> Any:
    """A field's type, without an `| None`."""
    tp = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) else tp


def range_text(meta: dict) -> str:
    """How a field's bounds read in its error: '>= 1', '> 0', 'in [0, 1)'."""
    low = next(((k, meta[k]) for k in ("ge", "gt") if k in meta), None)
    high = next(((k, meta[k]) for k in ("le", "lt") if k in meta), None)
    if low and high:
        left, right = "[" if low[0] == "ge" else "(", "]" if high[0] == "le" else ")"
        return f"in {left}{low[1]:g}, {high[1]:g}{right}"
    op, bound = low or high
    return f"{ {'ge': '>=', 'gt': '>', 'le': '<=', 'lt': '<'}[op] } {bound:g}"


def valid(tp: Any, meta: dict, default: Any) -> Any:
    """A value of one element that the field's checks accept."""
    if isinstance(default, tuple) and default:
        return default[0]
    if "choices" in meta:
        return meta["choices"][0]
    if tp in (int, float):
        return tp(meta.get("ge", meta.get("gt", 0) + 1))
    return {str: "x", bool: True, Path: "x"}[tp]


def out_of_bounds(tp: Any, meta: dict) -> Iterator[Any]:
    """Values just outside each declared bound, and the negatives below a lower one."""
    step = 1 if tp is int else 0.5
    for key, values in (("ge", (-step,)), ("gt", (0, -step)), ("le", (step,)), ("lt", (0, step))):
        if key in meta:
            yield from (tp(meta[key] + v) for v in values)


def scalar_bad(tp: Any, meta: dict, what: str) -> Iterator[tuple[Any, str]]:
    """(value, error after the flag) for one value of type `tp`; `what` names the type."""
    wrong = {bool: (1, "yes"), int: ("ten", 2.5, True), float: ("4", True), str: (2.5,), Path: (3,)}
    yield from ((v, f"must be {what}, not {v!r}") for v in wrong[tp])
    if tp is float:
        yield from ((v, f"must be a finite number, not {v}") for v in (math.nan, math.inf, -math.inf))
    if tp in (int, float):
        yield from ((v, f"must be {range_text(meta)}, not {v:g}") for v in out_of_bounds(tp, meta))
    if "choices" in meta:
        yield "magic", f"must be one of {', '.join(map(str, meta['choices']))}, not 'magic'"


def bad_values(cls: type, f: dataclasses.Field) -> Iterator[tuple[Any, str]]:
    """(value, error after the flag) for field `f` of `cls`: its type, and every check it declares."""
    tp, meta = field_type(cls, f.name), f.metadata
    if typing.get_origin(tp) is not tuple:
        if tp is int:
            yield [1, "a"], "must be an integer, not [1, 'a']"  # a list where one value is expected
        yield from scalar_bad(tp, meta, KINDS[tp])
        return
    element = typing.get_args(tp)[0]
    what = f"a list of {KINDS[element].split(' ', 1)[-1]}s"
    yield {}, f"must be {what}, not {{}}"
    one = valid(element, meta, f.default)
    yield from (([one, v], text) for v, text in scalar_bad(element, meta, what))
    if meta.get("min_len"):
        yield [one] * (meta["min_len"] - 1), f"needs at least {meta['min_len']} value(s)"
    if meta.get("unique"):
        yield [one, one], "must not repeat a value"


def cases(cls: type) -> list[Bad]:
    """Every bad value of every field of `cls`: from its own checks (the exact error), then from
    the checks of the shared setting of that name (refused, naming the setting)."""
    found: list[Bad] = []
    for f in dataclasses.fields(cls):
        own = [Bad(cls, f.name, v, f"{cli_name(f.name)} {text}") for v, text in bad_values(cls, f)]
        seen = {repr(b.value) for b in own}
        shared = SHARED.get(f.name)
        inherited = [] if shared is None else [v for v, _ in bad_values(cls, shared)]
        found += own + [Bad(cls, f.name, v, "", False) for v in inherited if repr(v) not in seen]
    return found


TABLE = [case for cls in (*PROTOCOLS.values(), *OPTIONS) for case in cases(cls)]


@pytest.mark.parametrize("case", TABLE, ids=str)
def test_bad_values_are_one_line_naming_the_setting(case):
    with pytest.raises(KdlabError) as info:
        case.cls(**{case.name: case.value})
    assert case.check(str(info.value)), str(info.value)


@pytest.mark.parametrize("cls", [*PROTOCOLS.values(), *OPTIONS], ids=lambda c: c.__name__)
def test_every_setting_declares_its_checks(cls):
    """A number needs a bound and a string its choices (also as a list's elements), unless it is
    free on purpose: a new or re-declared setting without them is a check forgotten."""
    for f in dataclasses.fields(cls):
        tp = field_type(cls, f.name)
        element = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp
        needs = {int: ("ge", "gt", "le", "lt"), float: ("ge", "gt", "le", "lt"), str: ("choices",)}
        if element in needs and f.name not in FREE:
            assert set(needs[element]) & set(f.metadata), f"{cls.__name__}.{f.name} declares no check"


def toml_value(value: Any) -> str:
    """`value` as TOML writes it (nan and inf included)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, dict):
        return "{}"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def cli_tokens(case: Bad) -> list[str] | None:
    """The command-line words giving the case's value, or None where argparse itself refuses
    the value (a wrong type) or cannot give it (an empty list, a bool)."""
    tp = field_type(case.cls, case.name)
    element = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp
    values = case.value if isinstance(case.value, list) else [case.value]
    if element in (bool, Path) or not values or isinstance(case.value, list) != (element is not tp):
        return None
    ok = {int: (int,), float: (int, float), str: (str,)}[element]
    if not all(isinstance(v, ok) and not isinstance(v, bool) for v in values):
        return None
    tokens = list(map(str, values))
    if element is tp:
        return [f"{case.flag}={tokens[0]}"]  # '=': a value such as -inf is no option
    return None if "-inf" in tokens else [case.flag, *tokens]


def first_per_field(table: list[Bad]) -> list[Bad]:
    """The first exact case of each setting: one value per setting through each kind of file."""
    firsts: dict[str, Bad] = {}
    for case in table:
        if case.exact:
            firsts.setdefault(case.name, case)
    return list(firsts.values())


def failures(runs: list[tuple[Bad, list[str]]], capsys) -> list[str]:
    """The cases that `kdlab` did not refuse with exit 1 and their one-line error."""
    wrong = []
    for case, argv in runs:
        code = main(argv)
        err = capsys.readouterr().err
        if code != 1 or not err.startswith("kdlab: error: ") or err.count("\n") != 1:
            wrong.append(f"{case}: exit {code}, {err!r}")
        elif not case.check(err.removeprefix("kdlab: error: ").rstrip("\n")):
            wrong.append(f"{case}: {err!r}")
    return wrong


def no_data(tmp_path: Path) -> list[str]:
    """Options under which a value that is not refused meets a missing data folder (one line,
    and never a download), not a training run."""
    return ["--data-dir", str(tmp_path / "no-data"), "--no-download", "--quiet"]


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_command_line(protocol, tmp_path, capsys):
    """Every bad value the command line can give, of the protocol's settings and the run options."""
    out = tmp_path / "out"
    table = cases(PROTOCOLS[protocol]) + cases(RunOptions)
    runs = [
        (case, ["run", protocol, "--out", str(out), *no_data(tmp_path), *tokens])
        for case in table
        if (tokens := cli_tokens(case)) is not None and case.name not in ("data_dir", "out", "quiet")
    ]
    assert len(runs) >= 10 and not failures(runs, capsys) and not out.exists()


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_config_files(protocol, tmp_path, capsys):
    """Each setting's first bad value (a wrong type: TOML values arrive untyped) from a config
    file; mythical-digit's every bad value."""
    out, cfg = tmp_path / "out", tmp_path / "study.toml"
    table = cases(PROTOCOLS[protocol])
    runs = []
    for i, case in enumerate(table if protocol == "mythical-digit" else first_per_field(table)):
        path = cfg.with_name(f"{i}.toml")
        path.write_text(f"{case.name} = {toml_value(case.value)}\n")
        runs.append((case, ["run", protocol, "--config", str(path), "--out", str(out), *no_data(tmp_path)]))
    assert not failures(runs, capsys) and not out.exists()


@pytest.mark.parametrize("protocol", [name for name in PROTOCOLS if protocols.get(name).metrics])
def test_sweep_files(protocol, tmp_path, capsys):
    """Every bad value from a sweep file: each setting's first in [base], the others in [grid]."""
    out = tmp_path / "out"
    runs, named = [], set()
    for i, case in enumerate(c for c in cases(PROTOCOLS[protocol]) if c.exact):
        value = toml_value(case.value)
        if case.name in named:
            text = f"protocol = '{protocol}'\n[grid]\n{case.name} = [{value}]\n"
        else:
            other = "batch_size = [128]" if case.name == "seed" else "seed = [0, 1]"
            text = f"protocol = '{protocol}'\n[base]\n{case.name} = {value}\n[grid]\n{other}\n"
            named.add(case.name)
        path = tmp_path / f"{i}.toml"
        path.write_text(text)
        runs.append((case, ["sweep", str(path), "--out", str(out)]))
    assert not failures(runs, capsys) and not out.exists()


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (MythicalDigitConfig, {"seeds": 3, "seed_list": [4, 5]}, "give a count (--seeds) or a list"),
        (Hinton2015Config, {"alpha": 0.0}, "--alpha must be > 0 here"),
        (SoftRegularizerConfig, {"min_epochs": 5, "max_epochs": 4}, "--min-epochs (5) must not exceed"),
        (EveryDigitConfig, {"val_size": 0}, "validation calibration needs a validation split"),
        (MythicalDigitConfig, {"omit": ["3", 3]}, "--omit must not repeat a value"),
        (EveryDigitConfig, {"classes": [7, "2", "7"]}, "--classes must not repeat a value"),
        (Hinton2015Config, {"jitter_transfer": True, "jitter": 0}, "--jitter-transfer needs --jitter > 0"),
        (
            Hinton2015Config,
            {"jitter_transfer": False, "sweep_jitter": True},
            "--sweep-jitter needs --jitter-transfer",
        ),
    ],
)
def test_meaningless_combinations(cls, values, message):
    """Settings legal one by one but meaningless together: refused with the settings."""
    with pytest.raises(KdlabError) as info:
        cls(**values)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_values_are_converted_where_meant():
    config = MythicalDigitConfig(temperature=2, omit=[3, 8], teacher_hidden=[30], seed_list=[4, 5])
    assert config.temperature == 2.0 and isinstance(config.temperature, float)
    assert config.omit == ("3", "8") and config.teacher_hidden == (30,)
    assert config.student_seeds() == [4, 5]
    assert MythicalDigitConfig(seed=2, seeds=3).student_seeds() == [2, 3, 4]
    assert MythicalDigitConfig(seeds=2, seed_list=[7, 9]).student_seeds() == [7, 9]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[grid]\nalpha = [0.5]\n[resources]\ncpus = 'a'", "--cpus-per-trial must be a number"),
        ("[grid]\nalpha = [0.5]\n[resources]\ncpus = inf", "--cpus-per-trial must be a finite number"),
    ],
)
def test_sweep_resources(text, message, tmp_path, capsys):
    path, out = tmp_path / "s.toml", tmp_path / "out"
    path.write_text(text)
    assert main(["sweep", str(path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


SEARCH = "[base]\nval_size = 1000\ncalibration = ['validation']\n[space]\n"


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("temperature = { loguniform = [1, inf] }", "bounds must be finite numbers"),
        ("temperature = { uniform = [nan, 2] }", "bounds must be finite numbers"),
        ("temperature = { uniform = [1, 'a'] }", "bounds must be finite numbers"),
        ("temperature = { uniform = [3, 2] }", "needs low < high"),
        ("temperature = { choice = [1, nan, 4] }", "--temperature must be a finite number"),
        ("student_hidden = { choice = [[30], [0], [50]] }", "--student-hidden must be >= 1"),
    ],
)
def test_search_space_bounds(space, message, tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(SEARCH + space)
    assert main(["tune", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "out").exists()
