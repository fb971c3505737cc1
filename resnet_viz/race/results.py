"""What a race showed: final losses and errors, the summary table, He et al.'s Fig. 6 checks, thinned curves."""

from __future__ import annotations

import math

from .config import run_label

# He et al. 2015, Table 6: CIFAR-10 test error (%) of the ResNets.
PAPER_CIFAR10_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}


def final_train_loss(run: dict, window: float = 0.1) -> float:
    """Mean training loss over the last ``window`` of the run's steps (single steps are noisy)."""
    losses = [r["train_loss"] for r in run["history"] if r.get("train_loss") is not None]
    if not losses:
        return float("nan")
    n = max(1, round(len(losses) * window))
    return sum(losses[-n:]) / n


def final_test_error(run: dict) -> float | None:
    errors = [r["test_error"] for r in run["history"] if r.get("test_error") is not None]
    return errors[-1] if errors else None


def run_seed(run: dict, result: dict | None = None) -> int:
    """The seed a run trained on (a file from before seeds were recorded: the recipe's)."""
    if "seed" in run:
        return int(run["seed"])
    return int(((result or {}).get("recipe") or {}).get("seed", 0))


def race_seeds(result: dict) -> list[int]:
    """The seeds of a race's runs, in order."""
    return sorted({run_seed(r, result) for r in result["runs"]})


def nets(result: dict) -> dict[tuple[str, int], list[dict]]:
    """``(arch, depth) -> its runs`` (one per seed), in the race's order."""
    out: dict[tuple[str, int], list[dict]] = {}
    for run in result["runs"]:
        out.setdefault((run["arch"], run["depth"]), []).append(run)
    return out


def for_seed(result: dict, seed: int) -> dict:
    """The race restricted to the runs of one seed."""
    return dict(result, runs=[r for r in result["runs"] if run_seed(r, result) == seed])


def summary(result: dict) -> list[dict]:
    """One row per run: label, seed, status, steps, final training loss / error, test error."""
    rows = []
    for run in result["runs"]:
        hist = run["history"]
        tail = hist[-max(1, len(hist) // 10) :] if hist else []
        rows.append(
            {
                "run": run.get("label") or run_label(run["arch"], run["depth"]),
                "seed": run_seed(run, result),
                "arch": run["arch"],
                "depth": run["depth"],
                "status": run.get("status", ""),
                "steps": len(hist) and hist[-1]["step"],
                "final_train_loss": final_train_loss(run),
                "final_train_error": sum(r["train_error"] for r in tail) / len(tail) if tail else None,
                "test_error": final_test_error(run),
            }
        )
    return rows


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def seed_summary(result: dict) -> list[dict]:
    """One row per net over its seeds: seeds, how many finished, mean / min / max final training loss, mean
    test error (a diverged seed's loss counts as infinite in min/max and is left out of the mean)."""
    rows = []
    for (arch, depth), runs in nets(result).items():
        losses = [final_train_loss(r) if r.get("status") != "diverged" else float("inf") for r in runs]
        tests = [final_test_error(r) for r in runs]
        rows.append(
            {
                "run": runs[0].get("label") or run_label(arch, depth),
                "arch": arch,
                "depth": depth,
                "seeds": len(runs),
                "finished": sum(r.get("status") == "finished" for r in runs),
                "final_train_loss": _mean(losses),
                "min_train_loss": min(losses),
                "max_train_loss": max(losses),
                "test_error": _mean([t for t in tests if t is not None]) if any(t is not None for t in tests) else None,
            }
        )
    return rows


def mean_curves(result: dict, key: str = "train_loss") -> dict[tuple[str, int], dict]:
    """Per net, its curve of ``key`` over the seeds: ``{"step", "mean", "low", "high", "seeds"}`` lists, where
    low/high are the smallest and largest seed's value at that step (steps every seed reached or recorded)."""
    out = {}
    for net, runs in nets(result).items():
        by_step: dict[int, list[float]] = {}
        for run in runs:
            for row in run["history"]:
                value = row.get(key)
                if value is not None and math.isfinite(value):
                    by_step.setdefault(row["step"], []).append(value)
        steps = sorted(by_step)
        out[net] = {
            "step": steps,
            "mean": [sum(by_step[s]) / len(by_step[s]) for s in steps],
            "low": [min(by_step[s]) for s in steps],
            "high": [max(by_step[s]) for s in steps],
            "seeds": [len(by_step[s]) for s in steps],
        }
    return out


# Fig. 6's checks: how far below chance (in nats) counts as "left chance", and how much higher the deeper
# ResNet's loss may end and still count as "at" the shallower one's.
LEFT_CHANCE_MARGIN = 0.05
RESNET_TIE = 0.02


def chance_loss(result: dict) -> float | None:
    """The cross-entropy of guessing: ln(number of classes), or None when the race does not say."""
    classes = (result.get("dataset") or {}).get("classes") or []
    return math.log(len(classes)) if len(classes) >= 2 else None


def fig6_checks(result: dict) -> list[dict]:
    """Both halves of He et al.'s Fig. 6 in a race, on final training losses (mean of the last 10% of steps),
    averaged over each net's seeds, with how many seeds show each check on their own.

    Compares the shallowest and the deepest depth that have both twins. One dict per check:
    ``{"check", "holds", "values", "seeds", "seeds_agree"}`` with check one of ``plain_trained`` (the deeper
    plain net ends at least :data:`LEFT_CHANCE_MARGIN` below chance), ``plain_degrades`` (it ends above the
    shallower plain net), ``resnet_deeper_no_worse`` (the deeper ResNet ends at most :data:`RESNET_TIE` above
    the shallower one) and ``resnets_below_plain`` (at every depth the ResNet ends below its plain twin);
    ``seeds_agree`` counts the seeds on which the check holds. Empty without two such depths.
    """
    checks = _fig6_on_means(result)
    seeds = race_seeds(result)
    per_seed = [{c["check"]: c["holds"] for c in _fig6_on_means(for_seed(result, s))} for s in seeds]
    for check in checks:
        check["seeds"] = len(seeds)
        check["seeds_agree"] = sum(bool(p.get(check["check"])) for p in per_seed)
    return checks


def _fig6_on_means(result: dict) -> list[dict]:
    loss = {
        net: _mean([final_train_loss(r) if r.get("status") != "diverged" else float("inf") for r in runs])
        for net, runs in nets(result).items()
    }
    loss = {net: (v if math.isfinite(v) else float("inf")) for net, v in loss.items()}
    depths = sorted({d for (_, d) in loss if ("resnet", d) in loss and ("plain", d) in loss})
    if len(depths) < 2:
        return []
    lo, hi = depths[0], depths[-1]
    checks = []
    chance = chance_loss(result)
    if chance is not None:
        checks.append(
            {
                "check": "plain_trained",
                "holds": loss[("plain", hi)] < chance - LEFT_CHANCE_MARGIN,
                "values": {"plain": loss[("plain", hi)], "chance": chance, "depth": hi},
            }
        )
    checks += [
        {
            "check": "plain_degrades",
            "holds": loss[("plain", hi)] > loss[("plain", lo)],
            "values": {"deep": loss[("plain", hi)], "shallow": loss[("plain", lo)], "depth": hi, "shallow_depth": lo},
        },
        {
            "check": "resnet_deeper_no_worse",
            "holds": loss[("resnet", hi)] <= loss[("resnet", lo)] + RESNET_TIE,
            "values": {"deep": loss[("resnet", hi)], "shallow": loss[("resnet", lo)], "depth": hi, "shallow_depth": lo},
        },
        {
            "check": "resnets_below_plain",
            "holds": all(loss[("resnet", d)] < loss[("plain", d)] for d in depths),
            "values": {d: (loss[("resnet", d)], loss[("plain", d)]) for d in depths},
        },
    ]
    return checks


def thin_history(result: dict, every: int) -> dict:
    """A copy whose histories keep every ``every``-th step, as the mean of the steps in between.

    Rows with a test error and each run's last row are kept, so checkpoints and the end survive.
    """
    if every <= 1:
        return result
    out = dict(result, runs=[])
    for run in result["runs"]:
        rows, bucket = [], []
        for i, row in enumerate(run["history"]):
            bucket.append(row)
            if row["step"] % every == 0 or row.get("test_error") is not None or i == len(run["history"]) - 1:
                merged = dict(row)
                for key in ("train_loss", "train_error"):
                    values = [r[key] for r in bucket if r.get(key) is not None and math.isfinite(r[key])]
                    merged[key] = round(sum(values) / len(values), 5) if values else row[key]
                rows.append(merged)
                bucket = []
        out["runs"].append(dict(run, history=rows))
    out["history_every"] = every
    return out
