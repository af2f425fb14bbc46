"""Blocks of the measurements besides the transfer study, each from its committed json: the demo
(``docs/results/demo/``), the training recipe (``docs/results/recipe/``), block-wise segmentation
(``docs/results/blockwise/``) and the cross-species distances (``docs/results/cross_species/``)."""

from __future__ import annotations

from pathlib import Path

from render_results import interval, load, names, num, plural, pm, table


def _need(root: Path, rel: str) -> dict:
    data = load(root, rel)
    if data is None:
        raise SystemExit(f"{rel} is missing")
    return data


def _checkpoint(path: str) -> str:
    """A checkpoint's short name: its folder for OUT/model.pt, else its file name."""
    p = Path(path)
    return p.parent.name if p.name == "model.pt" else p.name


def _source(data: dict) -> str:
    return f"Source: `{data['produced_by']}`" + (f"; {data['machine']}." if data.get("machine") else ".")


# -------------------------------------------------------------------------------------------------- demo
DEMO = "docs/results/demo/demo.json"


def demo_ranking(root: Path, arg=None) -> str:
    d = _need(root, DEMO)
    rows = [[f"**{r['source']}** (chosen)" if r.get("chosen") else r["source"],
             num(r["score"], 1) + " (worst)" if r.get("worst") else num(r["score"]),
             interval(*r["ci"], sign=False) if r.get("ci") else "—", "; ".join(r["flags"]) or "—"]
            for r in d["ranking"]]
    unit = " (bits; lower = more stable)" if d["estimator"].removeprefix("compat+") == "consistency" else \
        " (lower = closer to the target)"
    return (table(["source", d["estimator"] + unit, "95 % CI", "flags"], rows, "lrll")
            + f"\n\n`select-source` says: \"{d['verdict']}\".")


def demo_vi(root: Path, arg=None) -> str:
    d = _need(root, DEMO)
    rows = []
    for a in d["arms"].values():
        seeds = len(a["vi"]) if len(a["vi"]) > 1 else "—"
        vi = (f"{pm(a['vi_mean'], a['vi_sd'])} ({', '.join(num(v) for v in a['vi'])})" if "vi_mean" in a
              else num(a["vi"][0]))
        rows.append([a["label"], seeds, num(a["vi_split"]), num(a["vi_merge"]), vi])
    return table([f"held-out {d['heldout']}, VI in bits", "seeds", "VI split", "VI merge", "VI"], rows, "lrrrr")


def demo_summary(root: Path, arg=None) -> str:
    d = _need(root, DEMO)
    p, s = d["paired"], d["seconds"]
    return (f"Fine-tuning reduced VI by **{num(d['vi_reduction_pct'], 1)} %** (mean over seeds). Paired on the "
            f"samples, fine-tuned − scratch = **{num(p['mean'], sign=True)} bits** (per seed "
            f"{', '.join(num(x, sign=True) for x in p['per_seed'])}; 95 % bootstrap CI "
            f"{interval(*p['ci95'])}; with {plural(len(p['per_seed']), 'seed')} the exact Wilcoxon p cannot go "
            f"below {num(p['wilcoxon_p_floor'], 2)}). Time {s['wall']} s wall (each fine-tune "
            f"{s['finetune'][0]}–{s['finetune'][1]} s, each held-out evaluation {s['heldout_eval'][0]}–"
            f"{s['heldout_eval'][1]} s, select-source {s['select_source']} s); peak memory {d['peak_memory_gb']} GB. "
            + _source(d))


def demo_earlier(root: Path, arg=None) -> str:
    d = _need(root, DEMO)
    rows = [[e["what"], f"`{e['source']}`", num(e["zero_shot"]), pm(*e["finetuned"]), pm(*e["scratch"]),
             num(e["vi_reduction_pct"], 1) + " %",
             f"{num(e['paired']['mean'], sign=True)} {interval(*e['paired']['ci95'])}"] for e in d["earlier"]]
    cur = d["arms"]
    rows.insert(0, [f"this run (ascent fragments, {d['estimator']})", f"`{d['ranking'][0]['source']}`",
                    num(cur["zero-shot"]["vi"][0]), pm(cur["finetuned"]["vi_mean"], cur["finetuned"]["vi_sd"]),
                    pm(cur["scratch"]["vi_mean"], cur["scratch"]["vi_sd"]), num(d["vi_reduction_pct"], 1) + " %",
                    f"{num(d['paired']['mean'], sign=True)} {interval(*d['paired']['ci95'])}"])
    study = ", ".join(f"`{k}` {num(v, 2)}" for k, v in d["study_vi_for_this_target"].items())
    return (table(["run", "source", "zero-shot VI", "fine-tuned", "scratch", "reduction", "paired [95 % CI]"], rows,
                  "llrrrrr")
            + f"\n\nFor this target the transfer study's larger backbones reached {study} bits. One thread more or "
              f"less moved pretrained weights by up to {d['thread_weight_change']:g}: expect changes of the size of "
              "the seed-to-seed spread on another CPU"
            + (f" (an earlier single-seed comparison between two CPUs gave {d['cross_cpu_single_seed_pct'][0]:g} % "
               f"and {d['cross_cpu_single_seed_pct'][1]:g} % reduction, with the ssTEM source chosen)."
               if "cross_cpu_single_seed_pct" in d else "."))


# ------------------------------------------------------------------------------------------------ recipe
RECIPE = "docs/results/recipe/"


def _sweep_cell(variant: dict, key: str) -> str:
    """'mean ± sd (per seed)' when the variant reports a mean, else the per-seed values."""
    vals = ", ".join(num(x) for x in variant.get(key, []))
    if key + "_mean_sd" not in variant:
        return vals
    return pm(*variant[key + "_mean_sd"]) + (f" ({vals})" if vals else "")


def recipe_sweep(root: Path, arg=None) -> str:
    d = _need(root, RECIPE + "recipe_sweep.json")
    rows = []
    for v in d["variants"]:
        name = f"**{v['name']}** ({v['what']})" if v.get("default") else f"{v['name']} ({v['what']})"
        if v.get("identical_to_default"):
            rows.append([name, "—", f"identical to the default (gradient norm stays at {v['grad_norm'][0]}–"
                                     f"{v['grad_norm'][1]})", "", ""])
            continue
        seeds = len(v["val"])
        rows.append([name, seeds, *(_sweep_cell(v, k) for k in ("val", "test", "best"))])
    b, base = d["before_fixes"], d["baselines"]
    return (table(["variant", "seeds", "val VI", "test VI at the stored threshold", "best-test VI"], rows, "lrrrr")
            + f"\n\nBefore the fixes the default gave test VI {num(b['test_vi_stored_threshold'])} at its stored "
              f"threshold ({num(b['test_vi_file_by_path'])} when the file was given by path; a threshold sweep on "
              f"the test crop found {num(b['best_threshold_sweep'])}); one segment scores "
              f"{num(base['one_segment'])} and the best thresholding of the raw image "
              f"{num(base['raw_image_best_threshold'])}. "
              f"Rule: {d['rule']}. Decision: **{d['decision']}**. " + _source(d))


def recipe_peer(root: Path, arg=None) -> str:
    d = _need(root, RECIPE + "peer_recipe.json")
    rows = [[s["seed"], *(f"{num(s[k][0])} (t {s[k][1]})" for k in ("ours", "ours_best", "peer", "peer_best"))]
            for s in d["seeds"]]
    rows.append(["mean ± sd", *(pm(*d["mean_sd"][k]) for k in ("ours", "ours_best", "peer", "peer_best"))])
    p, cpu, before = d["paired"], d["cpu_seconds"], d["before_threshold_fix"]
    return (table(["seed", "ours, stored threshold", "ours, best test threshold", "torch-em, val-chosen threshold",
                   "torch-em, best test threshold"], rows, "lrrrr")
            + f"\n\nOurs − torch-em at each arm's chosen threshold: **{num(p['chosen']['mean'], sign=True)} bits, "
              f"paired 95 % t-interval {interval(*p['chosen']['ci95'])}**; at the best test threshold "
              f"{num(p['best']['mean'], sign=True)} {interval(*p['best']['ci95'])}. CPU time {cpu['ours'][0]} ± "
              f"{cpu['ours'][1]} s ours, {cpu['peer']} s peer. Before the threshold fix the same networks gave "
              f"{pm(*before['ours_stored'])} at their stored thresholds ({before['thresholds'][0]}–"
              f"{before['thresholds'][1]}). Ours: {d['ours']}; peer: {d['peer']}; fragments: {d['fragments']}. "
            + _source(d))


def recipe_lightning(root: Path, arg=None) -> str:
    d = _need(root, RECIPE + "lightning_overhead.json")
    ms = d["ms_per_step"]
    return (f"Bare PyTorch {ms['bare']} ms/step, Lightning {ms['lightning']} ms/step: **throughput ratio "
            f"{num(d['throughput_ratio'])}** (Lightning {num(100 * (ms['lightning'] / ms['bare'] - 1), 1)} % slower; "
            f"target ≤ {d['target_max_slowdown_pct']} %), {d['steps']} steps after {d['warmup_steps']} warm-up, best "
            f"of {d['repeats']}. Per repeat the ratio was {', '.join(num(r, 2) for r in d['ratio_per_repeat'])}: "
            "on a loaded machine the repeat-to-repeat noise is larger than the overhead. " + _source(d))


# --------------------------------------------------------------------------------------------- block-wise
BLOCKWISE = "docs/results/blockwise/"


def agreement(root: Path, arg=None) -> str:
    d = _need(root, BLOCKWISE + f"agreement_{arg}.json")
    rows = []
    for r in d["rows"]:
        ctx = r.get("contexts_read")
        vi = r["vi_vs_whole"]
        rows.append([r["method"], r["case"].replace("^3", "³"),
                     ("**0**" if "block-wise" in r["case"] else "0") if vi == 0 else f"{vi:.4f}" if vi >= 1e-3
                     else f"{vi:.6f}",
                     num(r["vi_vs_gt"]),
                     "–" if not ctx else f"{ctx[0]}" if ctx[0] == ctx[1] else f"{ctx[0]}–{ctx[1]}",
                     "–" if r.get("seconds") is None else num(r["seconds"], 1)])
    return (f"Checkpoint `{_checkpoint(d['checkpoint'])}` at threshold {d['threshold']}:\n\n"
            + table(["fragments", "segmentation", "VI vs whole-volume (bits)", "VI vs ground truth (bits)",
                     "contexts read", "seconds"], rows, "llrrlr"))


def memory(root: Path, arg=None) -> str:
    d = _need(root, BLOCKWISE + "segment_1024.json")
    early = load(root, BLOCKWISE + "segment_1024_earlier.json")
    rows = [[r["case"].replace("^3", "³"), num(r["seconds"], 1), f"{r['ns_per_voxel']:.0f}", num(r["ratio"], 2),
             num(r["peak_rss_gb"], 2), f"{r['segments']:,}"] for r in d["rows"]]
    big, a = d["rows"][-1], d["args"]
    twin = 2 * a["whole_size"] ** 3 * 8 / 1e9  # two uint64 segmentations held by the script's VI check
    text = (table(["case", "wall s", "ns / voxel", "time ratio", "peak RSS per process (GB)", "segments"], rows,
                  "lrrrrr")
            + f"\n\nAt {a['size']}³ the {a['block']}³ blocks made {big['pieces']:,} pieces, joined into "
              f"{big['fragments']:,} fragments with {big['edges']:,} region-graph edges; the global agglomeration "
              f"took {num(big['graph_seconds'], 1)} s. Blocks grew their context from the first guess of "
              f"{a['context']} to {big['contexts']['min']}–{big['contexts']['max']} voxels. The ratio compares "
              f"{a['workers']} workers with one process: per CPU-second block-wise costs about "
              f"{num(a['workers'] * big['ratio'], 1)}×. At {a['whole_size']}³ block-wise and whole-volume differ by "
              f"VI {d['vi_small']:.1e} bits. The driver peaked at {num(d['driver_peak_rss_gb'], 2)} GB, measured after "
              f"the script's own check had loaded two {a['whole_size']}³ uint64 segmentations ({num(twin, 1)} GB).")
    if early:
        text += (f" An earlier run, before the ascent forest's memory change, gave {early['peak_rss_gb']} GB and "
                 f"{early['ratio']}×: read the ratio to about ± {num(abs(early['ratio'] - big['ratio']), 1)}.")
    return text + " Raw output: `docs/results/blockwise/segment_1024.{json,log}`."


def fragments(root: Path, arg=None) -> str:
    d = _need(root, BLOCKWISE + "fragments.json")
    rows = [[r["map"], r["recorded_threshold"], num(r["watershed"]["vi_recorded"]), num(r["ascent"]["vi_recorded"]),
             f"{num(r['watershed']['vi_best'])} (t {r['watershed']['best_threshold']})",
             f"{num(r['ascent']['vi_best'])} (t {r['ascent']['best_threshold']})"] for r in d["rows"]]
    s = d["summary"]
    text = (table(["backbone:volume", "stored t", "watershed VI at t", "ascent VI at t", "watershed best",
                   "ascent best"], rows, "lrrrrr")
            + f"\n\nAscent − watershed over {s['vi_recorded']['n_maps']} maps: at the stored threshold "
              f"{num(s['vi_recorded']['mean_diff'], sign=True)} bits {interval(*s['vi_recorded']['ci95'])}, at the "
              f"best threshold {num(s['vi_best']['mean_diff'], sign=True)} {interval(*s['vi_best']['ci95'])}.")
    w = load(root, BLOCKWISE + "waterz_fragments.json")
    if w:
        text += (f" waterz's own initial watershed (`--fragments waterz`) took {w['seconds_per_model'][0]}–"
                 f"{w['seconds_per_model'][1]} s per model and gave higher VI: "
                 + "; ".join(f"{r['backbone']} {num(r['waterz'], 2)} vs {num(r['watershed'], 2)} (watershed)"
                             for r in w["rows"]) + ".")
    return text


def targets(root: Path, arg=None) -> str:
    """Whether the block-wise targets were met, checked on the agreement and memory json."""
    t = _need(root, BLOCKWISE + "targets.json")
    lines = []
    for name in ("demo", "gala_full"):
        d = load(root, BLOCKWISE + f"agreement_{name}.json")
        if d is None:
            continue
        for method in sorted({r["method"] for r in d["rows"]}):
            worst = {b: max((r["vi_vs_whole"] for r in d["rows"] if r["method"] == method
                             and r["case"].startswith(f"block-wise {b}^3")), default=None) for b in t["block_sizes"]}
            ok = all(v is not None and v <= t["vi_vs_whole_max_bits"] for v in worst.values())
            lines.append([f"`{_checkpoint(d['checkpoint'])}`", method, ", ".join(
                f"{b}³: {'—' if v is None else num(v, 4)}" for b, v in worst.items()), "met" if ok else "not met"])
    out = (f"Target: VI ≤ {t['vi_vs_whole_max_bits']} bits between block-wise and whole-volume segmentation at "
           f"{' and '.join(f'{b}³' for b in t['block_sizes'])} blocks (worst context), and peak memory ≤ "
           f"{t['peak_rss_per_worker_gb_max']:g} GB per worker at {t['volume']}³.\n\n"
           + table(["backbone", "fragments", "largest VI vs whole-volume (bits)", "target"], lines, "llrl"))
    mem = load(root, BLOCKWISE + "segment_1024.json")
    if mem:
        big = mem["rows"][-1]
        ok = big["peak_rss_gb"] <= t["peak_rss_per_worker_gb_max"]
        out += (f"\n\nMemory at {t['volume']}³: {num(big['peak_rss_gb'], 2)} GB per worker, target "
                f"{'met' if ok else 'not met'}.")
    return out


# ----------------------------------------------------------------------------------------- cross-species
SPECIES = "docs/results/cross_species/summary.json"


def _r(pair) -> str:
    return f"{num(pair[0])}, {num(pair[1])}"


def mantel(root: Path, arg=None) -> str:
    d = _need(root, SPECIES)
    rows = [[run, _r(r["mantel_divergence"]["spearman"]), _r(r["partial_divergence_given_modality"]["spearman"]),
             _r(r["mantel_modality"]["spearman"]), _r(r["partial_modality_given_divergence"]["spearman"])]
            for run, r in d["runs"].items()]
    s = d["settings"]
    phylo = load(root, "docs/results/cross_species/main_seed0_phylogeny.json")
    times = ""
    if phylo:
        pairs = {}
        for i, a in enumerate(phylo["species"]):
            for j, b in enumerate(phylo["species"]):
                if a < b:
                    pairs[(a, b)] = phylo["divergence_mya"][i][j]
        times = (" Divergence times (TimeTree medians): "
                 + "; ".join(f"*{a}*–*{b}* {t:g} Myr" for (a, b), t in sorted(pairs.items())) + ".")
    return (f"{plural(len(d['datasets']), 'volume')} ({names(d['datasets'])}), one encoder "
            f"(`{d['encoder']}`), {d['patches_per_volume']} patches per volume; main grid "
            f"{'×'.join(map(str, s['main']['voxel']))} nm (patches {'×'.join(map(str, s['main']['patch']))}), finer "
            f"grid {'×'.join(map(str, s['finer']['voxel']))} nm (patches {'×'.join(map(str, s['finer']['patch']))})."
            + times + " Each cell: Spearman r, exact permutation p.\n\n"
            + table(["run", "MMD² vs divergence", "partial, given modality", "MMD² vs modality",
                     "partial, given divergence"], rows)
            + "\n\n" + _mantel_reading(d))


def _mantel_reading(d: dict) -> str:
    cells = [r[k]["spearman"] for r in d["runs"].values() for k in
             ("mantel_divergence", "partial_divergence_given_modality", "mantel_modality",
              "partial_modality_given_divergence")]
    positive = sum(c[0] > 0 for c in cells)
    p_min = min(c[1] for c in cells)
    follows = positive == len(cells) and p_min < 0.05
    return (f"{positive} of {len(cells)} correlations are positive; the smallest p is {num(p_min)}. "
            + ("**The distances follow species or modality on these crops.**" if follows else
               "**On these crops the distances follow neither species nor imaging modality.**"))


def pair_groups(root: Path, arg=None) -> str:
    d = _need(root, SPECIES)
    runs = list(d["runs"])
    groups = list(d["runs"][runs[0]]["mean_mmd2_by_pair_group"])
    rows = [[g, d["runs"][runs[0]]["mean_mmd2_by_pair_group"][g][1],
             *(num(d["runs"][r]["mean_mmd2_by_pair_group"][g][0]) for r in runs)] for g in groups]
    agree = d["matrix_agreement_spearman"]
    lo, hi = min(agree.values()), max(agree.values())
    return (table(["pairs", "count", *runs], rows, "lr" + "r" * len(runs))
            + f"\n\nThe matrices agree across patch seeds and grids: Spearman {num(lo, 2)}–{num(hi, 2)} between "
              "their upper triangles.")


BLOCKS = {"demo.ranking": demo_ranking, "demo.vi": demo_vi, "demo.summary": demo_summary,
          "demo.earlier": demo_earlier, "recipe.sweep": recipe_sweep, "recipe.peer": recipe_peer,
          "recipe.lightning": recipe_lightning, "blockwise.agreement": agreement, "blockwise.memory": memory,
          "blockwise.targets": targets,
          "blockwise.fragments": fragments, "cross_species.mantel": mantel, "cross_species.groups": pair_groups}
