"""The arms of a steering run: each method x coefficient per target, the controls (random
directions of equal norm, the reversed direction) and the unsteered baseline, with the studies
each is generated on."""

from __future__ import annotations

from dataclasses import dataclass, field

from radinterp.labels import is_positive
from steering.methods import Steering, SteerSpec
from steering.sites import build_at, random_at, reversed_at

DIRECTION_METHODS = ("add", "diffmean", "diffmean_matched")
"""Methods that add a direction (they get random and reversed controls)."""


def arm_key(method: str, target: str | None, feature: int | None, coef: float | None,
            where: str | None) -> str:
    """The key of a steered arm in ``generations.jsonl`` (a ``steering.json`` row's fields
    name it: ``arm_key(r["method"], r["target"], r["feature"], r["coef"], r["where"])``)."""
    return f"{method}|{target}|{feature}|{coef}|{where}"


@dataclass
class Arm:
    """One way of generating: a steering (None: the baseline) on a population of studies."""

    key: str
    method: str
    steering: Steering | None
    target: str | None = None
    coef: float | None = None
    feature: int | None = None
    selection: str | None = None
    where: str | None = None
    population: str = "all"
    """``without`` the target, ``with`` it (ablate), or ``all`` (baseline, random controls)."""
    control_of: str | None = None
    """For a reversed arm: the key of the arm it reverses."""

    @property
    def direction_name(self) -> str | None:
        d = self.steering.direction if self.steering else None
        return d.name if d else None


@dataclass
class Plan:
    arms: list[Arm] = field(default_factory=list)
    studies_of: dict[str, list] = field(default_factory=dict)
    aliases: list[Arm] = field(default_factory=list)
    """Arms whose key another arm already has (two selections picking one feature): the same
    reports, a row of their own."""

    def add(self, arm: Arm, studies: list) -> None:
        if arm.key not in self.studies_of:
            self.arms.append(arm)
            self.studies_of[arm.key] = studies
        elif arm.selection and all(a.selection != arm.selection for a in self.arms + self.aliases
                                   if a.key == arm.key):
            self.aliases.append(arm)

    def rows(self, split: str, done: dict, labels: list[str]) -> list[dict]:
        from steering.evaluate import arm_row

        out = []
        reversed_of = {a.control_of: a.key for a in self.arms if a.control_of}
        for a in self.arms + self.aliases:
            if a.method in ("baseline", "random", "reversed"):
                continue
            rand = [r.key for r in self.arms if r.method == "random" and r.coef == a.coef] \
                if a.method in DIRECTION_METHODS else []
            ids = [s.study_id for s in self.studies_of[a.key]]
            out.append(arm_row(a, split, ids, done, "baseline", rand, reversed_of.get(a.key), labels))
        return out


def steered_candidate_arms(env, cfg, coef: float, n_studies: int) -> tuple[list[Arm], dict[str, list]]:
    """``add`` arms of every finding's AUROC candidates at ``coef``, each on the first
    ``n_studies`` selection-split studies without the finding (``steered`` selection)."""
    arms, studies_of = [], {}
    for t, cands in env.candidates.items():
        pop = _population(env.splits["select"], t, "without")[:n_studies]
        for c in cands:
            spec = SteerSpec(method="add", coef=coef, where=cfg.where, feature=c.feature, finding=t)
            a = Arm(arm_key("add", t, c.feature, coef, cfg.where), "add", build_at(env.resources, spec), t, coef,
                    c.feature, "steered", cfg.where, "without")
            arms.append(a)
            studies_of[a.key] = pop
    return arms, studies_of


def _population(studies: list, target: str | None, how: str) -> list:
    if target is None or how == "all":
        return studies
    want = how == "with"
    return [s for s in studies if is_positive(s.labels, target) == want]


def plan_arms(env, cfg, *, split: str, coefs: dict | None) -> Plan:
    """Arms of ``split``: every coefficient of ``cfg.coefs`` (``coefs`` None) or the chosen one
    per target x method (``coefs``: group key -> coefficient), with reversed arms on the test
    split."""
    from steering.evaluate import group_key

    resources, studies = env.resources, env.splits[split]
    plan = Plan()
    plan.add(Arm("baseline", "baseline", None), studies)
    targets: list[tuple[str | None, str, int | None, str | None]] = []  # (target, method, feature, selection)
    for method in cfg.methods:
        if method in ("add", "clamp", "ablate"):
            for f in cfg.features:
                for t in cfg.findings or [None]:
                    targets.append((t, method, f, None))
            for t in cfg.findings:
                for how, f in env.features_for.get(t, {}).items():
                    targets.append((t, method, f, how))
        else:
            targets += [(t, method, None, None) for t in cfg.findings]
    used_coefs: set[float] = set()
    for t, method, f, how in targets:
        key = group_key({"target": t, "method": method, "selection": how, "feature": f})
        if method in ("ablate", "prompt"):
            sweep = [None]
        elif coefs is None:
            sweep = list(cfg.coefs)
        else:
            if key not in coefs:
                continue
            sweep = [coefs[key]]
        pop = "with" if method == "ablate" else "without"
        for c in sweep:
            spec = SteerSpec(method=method, coef=1.0 if c is None else c, where=cfg.where, feature=f, finding=t)
            key_ = arm_key(method, t, f, c, cfg.where)
            arm = Arm(key_, method, build_at(resources, spec), t, c, f, how, cfg.where, pop)
            plan.add(arm, _population(studies, t, pop))
            if method in DIRECTION_METHODS:
                used_coefs.add(c)
                if coefs is not None:  # the reversed direction, on the test split
                    rev = Arm(f"reversed|{key_}", "reversed",
                              reversed_at(resources, arm.steering, c, cfg.where),
                              t, c, f, how, cfg.where, pop, control_of=key_)
                    plan.add(rev, _population(studies, t, pop))
    steered = _union(studies, [plan.studies_of[a.key] for a in plan.arms if a.method in DIRECTION_METHODS])
    for c in sorted(used_coefs):
        for i in range(cfg.n_random):
            rnd = random_at(resources, c, cfg.where, seed=cfg.seed * 1000 + i)
            plan.add(Arm(f"random|{i}|{c}|{cfg.where}", "random", rnd,
                         coef=c, where=cfg.where), steered)
    # the baseline only where some arm is compared with it
    plan.studies_of["baseline"] = _union(studies, [plan.studies_of[a.key] for a in plan.arms if a.key != "baseline"])
    return plan


def _union(studies: list, groups: list[list]) -> list:
    """The studies of ``studies`` that appear in any of ``groups``, in ``studies``' order."""
    ids = {s.study_id for g in groups for s in g}
    return [s for s in studies if s.study_id in ids]
