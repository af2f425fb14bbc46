"""The experiment grid: one ``adapt`` run per (target, budget n, strategy, seed), and the aggregate over them.

A task is self-contained (its own output folder, its own resumable state), so tasks run in any order, in
parallel as SLURM array elements, or again after a preemption.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from neuroadda.config import ExperimentConfig
from neuroadda.report import save_figure, write_json, write_text
from neuroadda.selection.select import safe_name


@dataclass(frozen=True)
class Task:
    target: str
    n: int
    strategy: str
    seed: int
    out: str

    @property
    def label(self) -> str:
        return f"{self.target} n={self.n} {self.strategy} seed {self.seed}"

    def argv(self, cfg: ExperimentConfig) -> list[str]:
        """``neuroadda adapt`` arguments for this task (a list: never parsed by a shell)."""
        args = ["adapt", "--target", self.target, "--sources", *cfg.sources, "--n", str(self.n), "--seeds", "1",
                "--seed", str(self.seed), "--strategy", self.strategy, "--out", self.out, "--quiet",
                "--backbones", str(backbones_dir(cfg))]
        if cfg.adapt_config:
            args += ["--config", cfg.adapt_config]
        if cfg.all_sources:
            args.append("--all-sources")
        return args

    def run(self, cfg: ExperimentConfig) -> dict:
        """Run this task in this process through the adapt workflow (what :meth:`argv` would run); its report."""
        from neuroadda.config import AdaptConfig, default_config_dir, load_config
        from neuroadda.workflows.adapt import adapt
        from neuroadda.workflows.backbones import backbones_for

        ac = load_config(cfg.adapt_config or default_config_dir() / "adapt.yaml", AdaptConfig,
                         overrides={"seed": self.seed, "active.strategy": self.strategy})
        backbones = backbones_for(cfg.sources, [], backbones_dir(cfg), out=self.out, progress=False)
        return adapt(self.target, backbones, ac, self.out, n=self.n, seeds=[ac.seed], rounds=1,
                     all_sources=cfg.all_sources, progress=False)


@dataclass(frozen=True)
class PretrainTask:
    """Pretraining the backbone of one source that the grid needs and ``backbones`` does not hold yet."""

    source: str
    config: str
    out: str

    @property
    def label(self) -> str:
        return f"pretrain {self.source}"

    def argv(self, cfg: ExperimentConfig | None = None) -> list[str]:
        """``neuroadda pretrain`` arguments (writes OUT/model.pt, where ``adapt --backbones`` looks)."""
        return ["pretrain", "--source", self.source, "--config", self.config, "--out", self.out, "--quiet"]

    def run(self, cfg: ExperimentConfig | None = None) -> Path:
        """Pretrain in this process through the pretrain workflow; the checkpoint."""
        from neuroadda.config import load_config
        from neuroadda.workflows.pretrain import pretrain

        return pretrain(self.source, load_config(self.config), self.out, progress=False)


def backbones_dir(cfg: ExperimentConfig) -> Path:
    """The folder of source backbones: ``backbones``, or OUT/backbones."""
    return Path(cfg.backbones) if cfg.backbones else Path(cfg.out) / "backbones"


def pretrain_tasks(cfg: ExperimentConfig) -> list[PretrainTask]:
    """One task per source whose backbone is not in :func:`backbones_dir` yet (in the sources' order)."""
    from neuroadda.config import default_config_dir
    from neuroadda.selection.select import resolve_backbones

    found = resolve_backbones(cfg.sources, [], backbones_dir(cfg))
    default = cfg.pretrain_config or str(default_config_dir() / "pretrain.yaml")
    return [PretrainTask(s, cfg.pretrain_configs.get(s, default), str(backbones_dir(cfg) / safe_name(s)))
            for s in cfg.sources if found[s] is None]


def validate(cfg: ExperimentConfig) -> None:
    """Everything the grid's tasks will read, checked before anything is written or submitted: dataset names
    (or paths) of targets and sources, and the adapt and pretrain configs (schema included)."""
    from neuroadda.config import AdaptConfig, PretrainConfig, load_config
    from neuroadda.errors import InputError
    from neuroadda.workflows.backbones import check_specs

    check_specs({"targets": cfg.targets, "sources": cfg.sources})  # unknown names suggest close ones
    stray = sorted(set(cfg.pretrain_configs) - set(cfg.sources))
    if stray:
        raise InputError(f"pretrain_configs: '{stray[0]}' is not one of the sources ({', '.join(cfg.sources)})")
    if cfg.adapt_config is not None:
        load_config(cfg.adapt_config, AdaptConfig)
    for t in pretrain_tasks(cfg):
        load_config(t.config, PretrainConfig)


def tasks(cfg: ExperimentConfig, target: str | None = None) -> list[Task]:
    """Every task of the grid (or of one target), in a fixed order: target, n, strategy, seed."""
    out = []
    for t in cfg.targets if target is None else [target]:
        for n in cfg.budgets:
            for strategy in cfg.strategies:
                for seed in range(cfg.seeds):
                    d = Path(cfg.out) / safe_name(t) / f"n{n}_{strategy}" / f"seed{seed}"
                    out.append(Task(t, n, strategy, seed, str(d)))
    return out


def write_tasks(cfg: ExperimentConfig, target: str | None, path: str | Path) -> Path:
    """The task list of one target (None: the pretraining tasks) as JSON, what each SLURM array element reads
    its arguments from."""
    todo = pretrain_tasks(cfg) if target is None else tasks(cfg, target)
    return write_json(path, {"config": cfg.model_dump(mode="json"),
                             "tasks": [asdict(t) | {"label": t.label, "argv": t.argv(cfg)} for t in todo]})


def aggregate(cfg: ExperimentConfig, *, require_all: bool = False) -> dict:
    """Collect every finished task's report: VI per (target, n, strategy, arm) as mean ± sd over seeds and the
    % reduction vs scratch. Writes OUT/results.json, OUT/results.md and OUT/vi_vs_n.png."""
    from neuroadda.active.report import mean_sd
    from neuroadda.errors import InputError

    rows, missing, transfer = {}, [], {}
    for t in tasks(cfg):
        rep = Path(t.out) / "report.json"
        if not rep.is_file():
            missing.append(t.out)
            continue
        r = json.loads(rep.read_text())
        key = (t.target, t.n, t.strategy)
        row = rows.setdefault(key, {"target": t.target, "n": t.n, "strategy": t.strategy, "seeds": [],
                                    "source": r["source"], "finetuned": [], "scratch": []})
        row["seeds"].append(t.seed)
        for ps in (r.get("per_source") or {}).get("sources", []):
            src = transfer.setdefault(t.target, {}).setdefault(ps["source"], {"score": [], "vi": []})
            src["score"].append(ps["score"])
            src["vi"].append(ps["vi_mean"])
        for arm in ("finetuned", "scratch"):
            row[arm].append(r["arms"][arm]["vi"][0])
    if require_all and missing:
        raise InputError(f"{len(missing)} task(s) have no report.json yet, e.g. {missing[0]}")
    if not rows:
        raise InputError(f"no finished task under {cfg.out}")
    results = []
    for row in rows.values():
        for arm in ("finetuned", "scratch"):
            row[f"{arm}_mean"], row[f"{arm}_sd"] = mean_sd(row[arm])
        row["vi_reduction_pct"] = 100.0 * (row["scratch_mean"] - row["finetuned_mean"]) / row["scratch_mean"]
        results.append(row)
    out = Path(cfg.out)
    summary = {"name": cfg.name, "results": results, "missing": missing, "transfer": transfer_summary(transfer),
               "vi_units": "bits, held-out region, gt label 0 ignored"}
    _write_markdown(summary, out / "results.md")
    plot_vi_vs_n(results, out / "vi_vs_n.png")
    write_json(out / "results.json", summary)
    return summary


def transfer_summary(transfer: dict) -> dict:
    """Per target: each source's mean MMD² and mean fine-tuned VI over tasks, and their Spearman correlation
    (rho > 0: sources closer by MMD² reached lower VI, i.e. MMD² predicted transfer)."""
    from scipy.stats import spearmanr

    out = {}
    for target, sources in transfer.items():
        rows = [{"source": s, "score": float(np.mean(v["score"])), "vi": float(np.mean(v["vi"])), "tasks": len(v["vi"])}
                for s, v in sorted(sources.items())]
        rho = p = None
        if len(rows) >= 3:
            res = spearmanr([r["score"] for r in rows], [r["vi"] for r in rows])
            rho, p = float(res.statistic), float(res.pvalue)
        out[target] = {"sources": rows, "spearman_score_vs_vi": rho, "spearman_p": p}
    return out


def _write_markdown(summary: dict, path: Path) -> None:

    lines = ["| target | source | n | strategy | seeds | fine-tuned VI | scratch VI | reduction |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(summary["results"], key=lambda r: (r["target"], r["strategy"], r["n"])):
        lines.append(f"| {r['target']} | {r['source']} | {r['n']} | {r['strategy']} | {len(r['seeds'])} | "
                     f"{r['finetuned_mean']:.3f} ± {r['finetuned_sd']:.3f} | {r['scratch_mean']:.3f} ± "
                     f"{r['scratch_sd']:.3f} | {r['vi_reduction_pct']:.1f}% |")
    for target, t in summary["transfer"].items():
        lines += ["", f"Transfer to {target}: " + ", ".join(f"{r['source']} score {r['score']:.3f} -> VI {r['vi']:.3f}"
                                                          for r in t["sources"])
                  + ("" if t["spearman_score_vs_vi"] is None else f"; Spearman {t['spearman_score_vs_vi']:.2f} "
                                                                  f"(p = {t['spearman_p']:.2f})")]
    write_text(path, "\n".join(lines) + "\n")


def plot_vi_vs_n(results: list[dict], path: Path) -> Path:
    """VI vs n with ± sd error bars, one panel per target, one line per (strategy, arm)."""
    from neuroadda.report import pyplot

    plt = pyplot()

    targets = sorted({r["target"] for r in results})
    colors: dict = {}  # one colour per (arm, strategy) across panels
    fig, axes = plt.subplots(1, len(targets), figsize=(4.0 * len(targets) + 2.4, 3.6), squeeze=False,
                             layout="constrained")
    for ax, target in zip(axes[0], targets):
        rs = [r for r in results if r["target"] == target]
        for strategy in sorted({r["strategy"] for r in rs}):
            for arm, ls in (("finetuned", "-"), ("scratch", "--")):
                pts = sorted((r["n"], r[f"{arm}_mean"], r[f"{arm}_sd"]) for r in rs if r["strategy"] == strategy)
                n, m, sd = (np.array(v) for v in zip(*pts))
                ax.errorbar(n, m, yerr=sd, ls=ls, marker="o", capsize=3, label=f"{arm}, {strategy}",
                            color=colors.setdefault((arm, strategy), f"C{len(colors)}"))
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["n"] for r in rs}), [str(k) for k in sorted({r["n"] for r in rs})])
        ax.set_xlabel("annotated samples n")
        ax.set_ylabel("VI on held-out region (bits)")
        ax.set_title(target, fontsize=9)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=8, frameon=False,
               title="mean ± sd over seeds", title_fontsize=8)
    return save_figure(fig, path)
