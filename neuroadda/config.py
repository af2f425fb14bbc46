"""Configuration schema (pydantic, unknown keys are errors) and YAML loading for ``configs/*.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from neuroadda.errors import ConfigError, format_validation_error, read_yaml_mapping
from neuroadda.vocab import LoggerName

Triple = tuple[PositiveInt, PositiveInt, PositiveInt]  # (z, y, x) voxels
VoxelSize = tuple[PositiveFloat, PositiveFloat, PositiveFloat]  # (z, y, x) nm


MAX_CANDIDATES = 1000  # select-samples' default cap on the candidates scored (a pool up to it is scored whole)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """MONAI 3-D UNet predicting 3 affinity logits (z, y, x)."""

    channels: list[PositiveInt] = Field([16, 32, 64, 128], min_length=2,
                                        description="features per level, shallow to deep")
    strides: Literal["auto"] | list[Triple] = Field(
        "auto", description="per down-sampling step (z, y, x); 'auto' derives anisotropic strides from voxel size")
    num_res_units: int = Field(1, ge=0)
    norm: Literal["instance", "batch"] = "instance"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class DataConfig(_Strict):
    patch_size: Triple = Field((16, 96, 96), description="(z, y, x) voxels at the training voxel size")
    voxel_size: VoxelSize | None = Field(
        None, description="(z, y, x) nm to resample every volume to; null = as stored")
    normalization: Literal["zscore", "percentile", "none"] = "zscore"
    val_fraction: float = Field(0.2, ge=0.0, lt=0.9, description="slab held out along the longest axis")
    num_workers: int = Field(0, ge=0)
    aux_offsets: list[tuple[int, int, int]] = Field(
        [], description="long-range affinities (dz, dy, dx) trained as extra output channels (a training signal "
                        "only: prediction and segmentation use the 3 nearest-neighbour channels)")

    @field_validator("aux_offsets")
    @classmethod
    def _offsets(cls, v):
        if any(tuple(o) == (0, 0, 0) for o in v):
            raise ValueError("aux_offsets must not contain (0, 0, 0)")
        return v


class AugmentConfig(_Strict):
    flips: bool = True
    rot90: bool = Field(True, description="in-plane (y, x) 90 degree rotations; needs a square patch")
    intensity: bool = Field(True, description="random scale/shift, gamma-free, Gaussian noise and blur")


class LossConfig(_Strict):
    bce: Literal["balanced", "plain", "none"] = Field(
        "balanced", description="balanced: positives and negatives weigh 1/2 each per channel; none: Dice only")
    dice_weight: float = Field(0.0, ge=0.0)
    dice_target: Literal["boundary", "affinity"] = Field(
        "boundary", description="Dice on boundaries (pooled) or per channel on affinities (as torch-em)")
    aux_weight: float = Field(1.0, ge=0.0, description="weight of the long-range auxiliary channels")

    @model_validator(mode="after")
    def _some_loss(self):
        if self.bce == "none" and self.dice_weight == 0:
            raise ValueError("bce is 'none' and dice_weight is 0: there is no loss to train on")
        return self


class TrainConfig(_Strict):
    max_steps: int = Field(1000, ge=1)
    batch_size: int = Field(2, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    val_every_n_steps: int = Field(250, ge=1)
    val_patches: int = Field(8, ge=0)
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = Field(1, ge=1)
    strategy: str = Field("auto", description="Lightning strategy; 'ddp' for several devices or nodes")
    precision: Literal["32", "32-true", "16-mixed", "bf16-mixed"] = "32"
    thresholds: list[float] = Field([0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
                                    description="waterz thresholds tried on the validation slab")
    max_val_voxels: int = Field(4_000_000, ge=1, description="cap on the validation slab used to pick the threshold")
    logger: LoggerName = Field("csv", description="wandb goes offline without an API key")
    checkpoint_every: int = Field(100, ge=0, description="steps between resumable checkpoints (0 = none)")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value (None = off)")
    schedule: Literal["warmup-cosine", "constant"] = Field(
        "warmup-cosine", description="LR: linear warm-up over 5 % of the steps then cosine decay to 5 %, or constant")

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v):
        if not v or any(not 0.0 < t < 1.0 for t in v):
            raise ValueError("thresholds must be a non-empty list of values in (0, 1)")
        return sorted(v)


class PretrainConfig(_Strict):
    seed: int = 0
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()


# The sample-selection strategies (neuroadda.active.strategies.STRATEGIES implements exactly these; a test
# checks the two agree), named here so the configs below the stages need not import them.
STRATEGY_NAMES = ("median-uncertainty", "max-uncertainty", "random", "k-center", "median-diverse")


def check_strategy(name: str) -> str:
    if name not in STRATEGY_NAMES:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGY_NAMES)}")
    return name


class ActiveConfig(_Strict):
    """Candidate pool, uncertainty and selection strategy (``neuroadda select-samples``)."""

    candidate_size: Triple = Field((16, 96, 96), description="(z, y, x) voxels of one sample to annotate")
    holdout_fraction: float = Field(0.4, ge=0.0, lt=0.9, description="slab never selected nor trained on (adapt, "
                                                                      "experiment, the study; select-samples only "
                                                                      "with --holdout)")
    holdout_axis: int | None = Field(None, ge=0, le=2, description="default: the longest axis")
    uncertainty: Literal["entropy", "tta", "mc_dropout"] = "entropy"
    tta: int = Field(4, ge=2, le=8)
    mc_samples: int = Field(8, ge=2)
    strategy: str = "random"  # the active-learning study's pre-registered rule (docs/results/active_learning)
    max_candidates: int | None = Field(MAX_CANDIDATES, ge=1, description="score at most this many candidates, a "
                                                                         "spatially stratified subsample of a larger "
                                                                         "pool (null: every candidate)")

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v):
        return check_strategy(v)

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """``max_candidates`` appears in dumps only when set to another value than the default, so the settings
        records of runs made before it existed (adapt's run.json, a study's config) still compare equal."""
        out = handler(self)
        if isinstance(out, dict) and out.get("max_candidates") == MAX_CANDIDATES:
            out.pop("max_candidates")
        return out


class FinetuneConfig(TrainConfig):
    """Both arms (from the backbone and from scratch) use this one schedule."""

    max_steps: int = Field(400, ge=1)
    patch_size: Triple | None = Field(None, description="default: the backbone's patch, capped by the sample size")
    val_samples: int = Field(0, ge=0, description="samples kept out of training to pick the waterz threshold "
                                                  "(0: pick it on the training samples)")
    val_every_n_steps: int = Field(10**9, ge=1)
    val_patches: int = Field(0, ge=0)


class SelectSourceConfig(_Strict):
    estimator: str | None = Field(None, description="source-selection estimator (None = the default: see "
                                                    "neuroadda.selection.ranking.DEFAULT_ESTIMATOR)")
    patches: int = Field(256, ge=4)
    permutations: int = Field(1000, ge=0)
    pooling: Literal["mean", "max", "meanmax", "meanstd"] = "mean"
    space: str = Field("standardize", pattern=r"^(standardize|none|pca:[1-9][0-9]*)$",
                       description="per-backbone normalization: standardize | pca:K | none")


class AdaptConfig(_Strict):
    """``configs/adapt.yaml``: everything ``select-samples``, ``finetune`` and ``adapt`` need."""

    seed: int = 0
    active: ActiveConfig = ActiveConfig()
    augment: AugmentConfig = AugmentConfig()
    loss: LossConfig = LossConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    select_source: SelectSourceConfig = SelectSourceConfig()


class DemoConfig(_Strict):
    """``configs/demo.yaml``: ``neuroadda demo``, the whole method on the bundled crops in minutes on a CPU.

    The small source backbones ship in ``backbones`` (``<source>.pt``); ``neuroadda demo --retrain`` rebuilds
    them with ``pretrain`` (ssTEM sources resampled to ``resample[source]`` nm first)."""

    target: str = "neuroproof"
    sources: list[str] = Field(min_length=2)
    backbones: str = Field("datasets/backbones", description="folder of <source>.pt, relative to the repository")
    n: int = Field(4, ge=1, description="samples to annotate (oracle labels from the target's ground truth)")
    seeds: int = Field(3, ge=1, description="seeds adapt.seed .. adapt.seed + seeds - 1 (paired on the samples)")
    resample: dict[str, VoxelSize] = Field(
        {}, description="(z, y, x) nm each source is resampled to for pretraining; absent = as stored")
    pretrain: PretrainConfig = PretrainConfig()
    adapt: AdaptConfig = AdaptConfig()


class ResourcesConfig(_Strict):
    """SLURM resources per array task (``neuroadda submit``); null = the cluster's default."""

    partition: str | None = None
    account: str | None = None
    gpus: int = Field(0, ge=0)
    cpus: int = Field(2, ge=1)
    mem: str = Field("8G", pattern=r"^[0-9]+[KMGT]?$")
    time: str = Field("04:00:00", pattern=r"^([0-9]+-)?[0-9]{1,2}(:[0-9]{2}){0,2}$")


class ExperimentConfig(_Strict):
    """``configs/experiment.yaml``: the grid targets x budgets n x strategies x seeds, run by ``experiment``
    locally or by ``submit`` as one SLURM job array per target."""

    name: str = Field("experiment", pattern=r"^[A-Za-z0-9._-]+$")
    targets: list[str] = Field(min_length=1)
    sources: list[str] = Field(min_length=1)
    backbones: str | None = Field(None, description="folder with <source>/model.pt (default OUT/backbones); "
                                                     "missing ones are pretrained first")
    pretrain_config: str | None = Field(None, description="pretrain config for missing backbones "
                                                          "(default configs/pretrain.yaml)")
    pretrain_configs: dict[str, str] = Field({}, description="per-source pretrain config, e.g. ssTEM sources")
    budgets: list[PositiveInt] = Field([4], min_length=1, description="annotated samples n")
    strategies: list[str] = Field(["median-uncertainty"], min_length=1)
    seeds: int = Field(3, ge=1)
    all_sources: bool = Field(False, description="fine-tune from every source too (Spearman of MMD² vs VI)")
    adapt_config: str | None = Field(None, description="adapt config YAML (default configs/adapt.yaml)")
    out: str = "runs/experiment"
    resources: ResourcesConfig = ResourcesConfig()

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, v):
        return [check_strategy(name) for name in v]


class StudyTarget(_Strict):
    """One target of the transfer study and how it is prepared (at its own voxel size unless given)."""

    name: str
    voxel_size: VoxelSize | None = Field(None, description="(z, y, x) nm to resample the target to")
    candidate_size: Triple | None = Field(None, description="sample size (voxels); default adapt.active's")
    holdout_fraction: float | None = Field(None, ge=0.05, lt=0.9, description="default adapt.active's")


class ActiveLearningConfig(_Strict):
    """The active-learning factor of the transfer study: for every target, the source its ``source_estimator``
    picks, fine-tuned on the samples each strategy picks at each budget (scratch on the random picks at every
    budget), and the fully supervised ceiling."""

    strategies: list[str] = Field(["random", "median-uncertainty", "max-uncertainty", "k-center"], min_length=2)
    budgets: list[PositiveInt] = Field([1, 2, 4, 8], min_length=1, description="annotated samples n")
    seeds: int = Field(5, ge=2, description="seeds 0 .. seeds - 1 (the transfer study's first seeds: its random "
                                            "samples and scratch arms are shared)")
    source_estimator: str = Field("consistency", description="each target's source: this estimator's pick among "
                                                             "the study's sources (the default selector)")
    ceiling_seeds: int = Field(3, ge=0, description="fully supervised runs per target (0 = none)")
    ceiling_steps: int | None = Field(None, ge=1, description="training steps of the ceiling (default: the "
                                                              "target's pretrain config)")

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, v):
        v = [check_strategy(name) for name in v]
        if "random" not in v:
            raise ValueError("strategies must include 'random': every strategy is judged against it")
        return v


class TransferStudyConfig(_Strict):
    """``configs/transfer_study.yaml``: fine-tune every source (and scratch) on every target on one shared sample
    set per (target, n, seed); the realised held-out VI is the truth every source-selection estimator is judged by."""

    name: str = Field("transfer-study", pattern=r"^[A-Za-z0-9._-]+$")
    targets: list[StudyTarget] = Field(min_length=1)
    sources: list[str] = Field(min_length=2, description="dataset names; a target is never its own source")
    exclude: dict[str, list[str]] = Field({}, description="target -> sources not to run on it")
    budgets: list[PositiveInt] = Field([4], min_length=1, description="annotated samples n")
    seeds: int = Field(5, ge=2)
    sampling: Literal["random", "k-center"] = Field(
        "random", description="shared sample sets chosen without any source model (k-center: on raw-intensity "
                              "features, the same for every source)")
    median_uncertainty: bool = Field(False, description="also each source's own median-uncertainty samples, "
                                                        "as a separate factor")
    backbones: str = Field("runs/study/backbones", description="folder with <source>/model.pt (or <source>.pt, "
                                                               "<source>.zip, <source>/rdf.yaml: any model kind); "
                                                               "missing ones are pretrained with the default recipe")
    pretrain_config: str | None = Field(None, description="default configs/pretrain.yaml")
    pretrain_configs: dict[str, str] = Field({}, description="source -> pretrain config overriding pretrain_config")
    adapt_config: str | None = Field(None, description="fine-tuning schedule etc. (default configs/adapt.yaml)")
    finetune_steps: int | None = Field(None, ge=1, description="override adapt finetune.max_steps")
    estimators: list[str] = Field(["mmd2"], description="source-selection estimators scored for every target")
    active_learning: ActiveLearningConfig | None = Field(None, description="the strategies x budgets factor "
                                                                           "(docs/results/active_learning)")
    out: str = "runs/study"
    resources: ResourcesConfig = ResourcesConfig()

    @model_validator(mode="after")
    def _known(self):
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets repeat a name: {names}")
        for t, srcs in self.exclude.items():
            if t not in names:
                raise ValueError(f"exclude names target '{t}', which is not in targets")
            bad = [s for s in srcs if s not in self.sources]
            if bad:
                raise ValueError(f"exclude[{t}] names unknown source(s) {bad}")
        for t in names:
            if not [s for s in self.sources if s != t and s not in self.exclude.get(t, [])]:
                raise ValueError(f"target '{t}' has no source left to transfer from")
        al = self.active_learning
        if al is not None and al.seeds > self.seeds:
            raise ValueError(f"active_learning.seeds ({al.seeds}) must not exceed seeds ({self.seeds})")
        if al is not None and al.source_estimator not in self.estimators:
            raise ValueError(f"active_learning.source_estimator '{al.source_estimator}' is not one of estimators")
        return self


def default_config_dir() -> Path:
    """The shipped ``configs/`` (inside the installed package, or the checkout's)."""
    from neuroadda.paths import configs_dir

    return configs_dir()


def load_config(path: str | Path | None, schema: type[BaseModel] = PretrainConfig, overrides: dict | None = None,
                flags: dict[str, str] | None = None):
    """Load YAML ``path`` (None = schema defaults), apply dotted ``overrides`` ({"train.max_steps": 5}), validate.
    A relative ``path`` that does not exist here but names a shipped config (``configs/adapt.yaml``) is that one.
    A bad value that came from an override is reported by its flag: ``flags[key]``, else ``--max-steps`` for
    ``train.max_steps`` (the last part, ``_`` as ``-``)."""
    from neuroadda.paths import shipped_file

    data: dict = {}
    path = None if path is None else shipped_file(path)
    where = "defaults" if path is None else str(path)
    if path is not None:
        data = read_yaml_mapping(path, "config file")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    given = {k: (flags or {}).get(k, "--" + k.split(".")[-1].replace("_", "-"))
             for k, v in (overrides or {}).items() if v is not None}
    try:
        return schema(**data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, where, given)) from None
