"""Offline commands: ``shoprank prepare``, ``train …``, ``export``, ``calibrate``, ``eval``, ``verify-data``.

Registered on the ``shoprank`` typer app by ``service/cli.py``; heavy imports stay inside the commands so the
serving CLI starts without torch. Commands parse options and call the package; the work lives in modules.
Options that size a model default to unset (None): only the options given override the config dataclass
(``RankerConfig``, ``StudentConfig``, ``AdaptorConfig``), whose defaults are the one place they are written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import typer

from service.catalogue import HOME_DEPOT_SHA256, HOME_DEPOT_ZIP
from service.settings import Settings
from training.names import KD_LOSSES, MATRYOSHKA_DIMS, ROUTINGS, TASKS

train_app = typer.Typer(help="Train models on the vendored data (train split only).", no_args_is_help=True)
CUTS = ",".join(map(str, MATRYOSHKA_DIMS))


def given(**options) -> dict:
    """The options that were set: the rest fall back to the config dataclass's defaults."""
    return {name: value for name, value in options.items() if value is not None}


def floats(text: str | None) -> tuple[float, ...] | None:
    return None if text is None else tuple(float(x) for x in text.split(","))


def verify_data(data_dir: Path) -> None:
    """Refuse to go on with a missing or altered data file."""
    path = data_dir / HOME_DEPOT_ZIP
    if not path.exists():
        raise typer.BadParameter(f"{path} is missing: the data is vendored in the repository's data/ folder")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != HOME_DEPOT_SHA256:
        raise typer.BadParameter(f"{path} has sha256 {digest}, expected {HOME_DEPOT_SHA256}")


@train_app.command("ranker")
def train_ranker_command(
    out_dir: Path = typer.Option(Path("artifacts/ranker-v1"), help="where model.pt + config.json go"),
    epochs: float = typer.Option(None, help="passes over the train split (unset: RankerConfig's)"),
    limit: int = typer.Option(0, help="train on a random sample of this many pairs per task (0 = all)"),
    threads: int = typer.Option(None, help="torch CPU threads (unset: RankerConfig's)"),
    tasks: str = typer.Option(None, help=f"comma-separated, of {', '.join(TASKS)} (unset: RankerConfig's)"),
    routing: str = typer.Option(None, help=f"task routing: {' | '.join(ROUTINGS)} (unset: RankerConfig's)"),
    private_layers: int = typer.Option(None, help="mhp only: private top transformer layers per task"),
    init_from: Path = typer.Option(None, help="continue from this ranker artifact (same tasks and routing)"),
    lr: float = typer.Option(None, help="encoder learning rate (peak, linear decay; unset: RankerConfig's)"),
    head_lr: float = typer.Option(None, help="head learning rate (peak, linear decay; unset: RankerConfig's)"),
    seed: int = typer.Option(None, help="shuffling and sampling seed (unset: RankerConfig's)"),
    w_pairwise: float = typer.Option(None, help="weight of the RankNet loss within a query (needs --batching group)"),
    batching: str = typer.Option(None, help="length: similar lengths per batch | group: whole queries per batch"),
) -> None:
    """Train a ranker: MiniLM + ordinal head (P(y≥1), P(y≥2)) + CTR/CVR heads (simulated engagement).

    One task is the single-task ranker (the served one is query_item); several make the unified
    multi-task ranker with the chosen routing."""
    from training.cross_encoder.train import RankerConfig, train_ranker_from_files

    settings = Settings()
    verify_data(settings.data_dir)
    config = RankerConfig(**given(epochs=epochs, threads=threads, tasks=tasks.split(",") if tasks else None,
                                  routing=routing, private_layers=private_layers,
                                  init_from=str(init_from) if init_from else None, lr=lr, head_lr=head_lr, seed=seed,
                                  w_pairwise=w_pairwise, batching=batching))
    train_ranker_from_files(data_dir=settings.data_dir, out_dir=out_dir, config=config, limit=limit or None)


@train_app.command("student")
def train_student_command(
    out_dir: Path = typer.Option(Path("artifacts/student"), help="sentence-transformers model dir to write"),
    teacher_scores: Path = typer.Option(None, help="ranker scores of the train pairs (shoprank teacher-scores)"),
    kd_loss: str = typer.Option(None, help=f"{' | '.join(KD_LOSSES)} (unset: StudentConfig's)"),
    preset: str = typer.Option("full", help="full (the recipe's run, ≈ 20 min on 2 cores); uncapped (every train "
                                            "row, ≈ 45 min); trial (the earlier budgeted run of docs/training.md); "
                                            "or quick (a few minutes)"),
    max_seconds: float = typer.Option(0, help="stop after this much wall time and save (0 = no budget)"),
    clicks: bool = typer.Option(True, help="MNRL on simulated click positives (off: the label ablation)"),
    labels: bool = typer.Option(True, help="contrastive on the binarised labels (off: the label ablation)"),
    kd: bool = typer.Option(True, help="distillation from the ranker's scores (off: the label ablation)"),
    init_from: Path = typer.Option(None, help="continue from this student dir instead of the base model"),
    matryoshka_weights: str = typer.Option(None, help=f"loss weight per Matryoshka cut {CUTS} (unset: the "
                                                       "preset's), e.g. 1,1,1,12 to push the 64-d cut"),
    lr: float = typer.Option(None, help="peak learning rate (unset: the preset's)"),
    max_steps: int = typer.Option(None, help="stop after this many steps (unset: the preset's one pass)"),
    seed: int = typer.Option(None, help="sampling and shuffling seed (unset: StudentConfig's)"),
) -> None:
    """Bi-encoder student: MNRL on simulated clicks + contrastive on labels + KD, Matryoshka 384→64."""
    from training.biencoder.train import StudentConfig, train_student_from_files

    settings = Settings()
    try:
        config = StudentConfig.preset(preset, max_train_seconds=max_seconds or None, use_clicks=clicks,
                                      use_labels=labels, use_kd=kd,
                                      **given(kd_loss=kd_loss, lr=lr, max_steps=max_steps, seed=seed,
                                              matryoshka_weights=floats(matryoshka_weights)))
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    if config.matryoshka_weights and len(config.matryoshka_weights) != len(config.matryoshka_dims):
        raise typer.BadParameter(f"--matryoshka-weights needs one weight per cut {config.matryoshka_dims}")
    train_student_from_files(data_dir=settings.data_dir, teacher_scores=teacher_scores, config=config, out_dir=out_dir,
                             base_model=str(init_from) if init_from else None)


@train_app.command("adaptor")
def train_adaptor_command(
    student: Path = typer.Argument(..., help="a sentence-transformers student dir (artifacts/student*)"),
    out_dir: Path = typer.Option(None, help="where the adapted student goes (default <student>-adapted)"),
    epochs: int = typer.Option(None, help="passes over the train queries (unset: AdaptorConfig's)"),
    lr: float = typer.Option(None, help="Adam learning rate of the map (unset: AdaptorConfig's)"),
    min_label: int = typer.Option(None, help="a train pair at this label or above is a positive (1 partial, 2 exact)"),
    weights: str = typer.Option(None, help=f"loss weight per Matryoshka cut {CUTS} (unset: AdaptorConfig's)"),
    catalogue_sample: int = typer.Option(0, help="negatives: this many random products (0: the whole catalogue)"),
    validate: bool = typer.Option(True, help="log validation recall@100 per epoch (recorded in the card)"),
    seed: int = typer.Option(None, help="shuffling seed (unset: AdaptorConfig's)"),
) -> None:
    """Fit a linear map on a frozen student against the whole catalogue (training/biencoder/adaptor.py)."""
    from service.catalogue import load_catalogue
    from training.biencoder.adaptor import AdaptorConfig, adapt_student
    from training.data import labelled_pairs, split_frame

    settings = Settings()
    config = AdaptorConfig(catalogue_sample=catalogue_sample or None, threads=settings.intra_op_threads,
                           **given(weights=floats(weights), epochs=epochs, lr=lr, min_label=min_label, seed=seed))
    if len(config.weights) != len(config.dims):
        raise typer.BadParameter(f"--weights needs one weight per cut {config.dims}")
    pairs = labelled_pairs(settings.data_dir)
    catalogue = load_catalogue(settings.data_dir)
    out = adapt_student(student_dir=student, out_dir=out_dir or student.with_name(student.name + "-adapted"),
                        pairs=split_frame(pairs, "train"), item_ids=catalogue.item_ids,
                        item_titles=catalogue.item_titles, config=config,
                        validation=split_frame(pairs, "validation") if validate else None)
    typer.echo(f"adapted student: {out}")


@train_app.command("ranker-lite")
def train_ranker_lite_command(
    teacher_scores: Path = typer.Option(None, help="the served ranker's logits on train pairs (training/first_phase/"
                                                   "targets.py); without it the teacher's ONNX scores each batch"),
    teacher: Path = typer.Option(None, help="the exported ranker version to drop layers from (unset: LiteConfig's)"),
    keep_layers: str = typer.Option(None, help="transformer layers of the teacher the student keeps, e.g. 0,2,4 "
                                               "(unset: LiteConfig's)"),
    loss: str = typer.Option(None, help="mse (keeps the teacher's logit scale) | pearson (unset: LiteConfig's)"),
    epochs: float = typer.Option(None, help="passes over the target pairs (unset: LiteConfig's)"),
    lr: float = typer.Option(None, help="peak learning rate (linear warm-up and decay; unset: LiteConfig's)"),
    max_seconds: float = typer.Option(0, help="wall-clock budget; the schedule is planned to end with it (0 = none)"),
    limit: int = typer.Option(0, help="distil on a random sample of this many pairs (0 = all)"),
    out_dir: Path = typer.Option(Path("artifacts/ranker-lite/student"), help="the student ranker artifact"),
    export_repo: Path = typer.Option(None, help="also export (int8 + fp32) and calibrate on validation into this "
                                                "model repository, e.g. artifacts/ranker-lite/model_repo"),
    version: int = typer.Option(1, help="version directory of the export"),
    seed: int = typer.Option(None, help="sampling and shuffling seed (unset: LiteConfig's)"),
    init_from: Path = typer.Option(None, help="continue this student artifact (same --keep-layers)"),
    threads: int = typer.Option(0, help="torch / ONNX Runtime threads (0: SHOPRANK_INTRA_OP_THREADS); 1 is faster "
                                        "on cores shared with other jobs"),
) -> None:
    """A cheaper second phase: the served ranker with layers dropped, distilled on its four logits."""
    from training.cross_encoder.distill import LiteConfig, distil_lite_ranker, load_targets, train_pairs

    config = LiteConfig(max_seconds=max_seconds or None, limit=limit or None,
                        threads=threads or Settings().intra_op_threads, init_from=str(init_from) if init_from else None,
                        **given(teacher=str(teacher) if teacher else None, loss=loss, epochs=epochs, lr=lr, seed=seed,
                                keep_layers=[int(k) for k in keep_layers.split(",")] if keep_layers else None))
    teacher = Path(config.teacher)
    if teacher_scores and teacher_scores.exists():
        targets = load_targets(teacher_scores)
    else:  # no scores file: the teacher's ONNX scores each batch of the ranker's own train rows
        card = json.loads((teacher / "shoprank.json").read_text())
        targets = train_pairs(Settings().data_dir, card["tasks"])
    artifact = distil_lite_ranker(targets, config, out_dir)
    typer.echo(f"student: {artifact}")
    if export_repo:
        from training.cross_encoder.lite_compare import export_lite

        typer.echo(f"exported: {export_lite(artifact, repo=export_repo, version=version)}")


@train_app.command("recipe")
def train_recipe_command(
    preset: str = typer.Option("quick", help="quick (a smoke run, ≤ 10 min on 2 cores) or full (≤ 2 h)"),
    work_dir: Path = typer.Option(None, help="where each step's output goes (default artifacts/recipe-<preset>); "
                                             "a rerun skips the steps whose output is there"),
    model_repo: Path = typer.Option(None, help="Triton model repository to export into (default <work-dir>/model_repo; "
                                               "model_repo publishes to the served one)"),
    version: int = typer.Option(1, help="version directory the models are exported as"),
    teacher_labels: Path = typer.Option(None, help="a `shoprank label` parquet: train on the LLM teacher's ratings "
                                                   "instead of the human ones"),
) -> None:
    """The whole recipe: ranker → distillation scores → student → ONNX export → parity → calibration → test table."""
    from training.recipe import PRESETS, run_recipe

    if preset not in PRESETS:
        raise typer.BadParameter(f"--preset must be one of {', '.join(PRESETS)}")
    settings = Settings()
    verify_data(settings.data_dir)
    run = run_recipe(preset=PRESETS[preset], work_dir=work_dir or Path(f"artifacts/recipe-{preset}"),
                     model_repo=model_repo, version=version, teacher_labels=teacher_labels, settings=settings)
    typer.echo(run.summary())


@train_app.command("first-phase")
def train_first_phase_command(
    model_repo: Path = typer.Option(Path("model_repo"), help="repository whose served encoder and ranker it learns "
                                                              "from, and where first_phase/<version> is written"),
    version: int = typer.Option(1, help="version directory of first_phase"),
    work_dir: Path = typer.Option(Path("artifacts/first_phase"), help="ranker scores, vectors and history "
                                                                      "(reused when they match)"),
    hidden: str = typer.Option(None, help="hidden layer widths, comma-separated (unset: FirstPhaseConfig's)"),
    loss: str = typer.Option("mse,bce", help="mse on the ranker's logits | bce on its probabilities | mse,bce: fit "
                                         "both, export the one closer to the ranker on validation"),
    epochs: int = typer.Option(None, help="passes over the train pairs (best validation epoch kept)"),
    max_seconds: float = typer.Option(None, help="training-time budget (the epochs stop there)"),
    retrieved_k: int = typer.Option(0, help="also learn from each train query's top-k retrieved titles (0 = none)"),
    retrieved_max_pairs: int = typer.Option(None, help="cap on the retrieved pairs the ranker scores (0 = none)"),
    int8_share: float = typer.Option(None, help="share of item vectors replaced by the int8 store's round trip"),
    threads: int = typer.Option(None, help="torch CPU threads"),
    train_scores: Path = typer.Option(None, help="use these ranker scores of train pairs (a subset scored earlier) "
                                                 "instead of scoring every train pair"),
) -> None:
    """The first phase of phased ranking: an MLP over the served encoder's two vectors, distilled from the ranker.

    Unset sizes are FirstPhaseConfig's (and FirstPhaseRun's retrieved-pair cap)."""
    from training.first_phase.step import FirstPhaseRun, train_first_phase
    from training.first_phase.train import FirstPhaseConfig

    settings = Settings().model_copy(update={"model_repo": model_repo, "inference": "embedded"})
    verify_data(settings.data_dir)
    sizes = given(hidden=tuple(int(h) for h in hidden.split(",") if h) if hidden else None, epochs=epochs,
                  max_seconds=max_seconds, int8_share=int8_share, threads=threads)
    configs = [FirstPhaseConfig(loss=kind, **sizes) for kind in loss.split(",")]
    cap = {} if retrieved_max_pairs is None else {"retrieved_max_pairs": retrieved_max_pairs or None}  # 0: no cap
    card = train_first_phase(settings=settings, work_dir=work_dir, repo=model_repo, version=version,
                             run=FirstPhaseRun(model=configs[0], alternatives=tuple(configs[1:]), retrieved_k=retrieved_k,
                                               train_scores=train_scores, **cap))
    typer.echo(json.dumps(card, indent=2))


@train_app.command("item-tower")
def train_item_tower_command(
    model_repo: Path = typer.Option(Path("model_repo"), help="repository whose served encoder it is distilled from, "
                                                              "and where item_encoder/<version> is written"),
    version: int = typer.Option(1, help="version directory of the item tower"),
    work_dir: Path = typer.Option(Path("artifacts/item_tower"), help="targets, checkpoints and history"),
    layers: str = typer.Option(None, help="the encoder's layers the tower keeps, comma-separated "
                                          "(unset: TowerConfig's)"),
    epochs: float = typer.Option(None, help="passes over the catalogue titles (unset: TowerConfig's)"),
    max_minutes: float = typer.Option(None, help="training-time budget (unset: TowerConfig's)"),
    init_from: Path = typer.Option(None, help="continue training this saved tower dir instead of starting from "
                                              "the encoder's layers"),
    ship_only: Path = typer.Option(None, help="skip training: export and gate this trained tower dir"),
) -> None:
    """A smaller item tower distilled onto the served encoder's item vectors; shipped only if catalogue
    recall@100 through the funnel stays within 0.01 of the encoder's on validation (training/item_tower/)."""
    from dataclasses import replace

    from training.item_tower.step import ship_item_tower, train_and_ship
    from training.item_tower.train import TowerConfig

    settings = Settings().model_copy(update={"model_repo": model_repo, "inference": "embedded"})
    verify_data(settings.data_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if ship_only is not None:
        typer.echo(json.dumps(ship_item_tower(settings, tower_dir=ship_only, work_dir=work_dir, version=version),
                              indent=2))
        return
    overrides = {"layers": None if layers is None else [int(x) for x in layers.split(",")],
                 "epochs": epochs, "max_minutes": max_minutes, "init_from": None if init_from is None else str(init_from)}
    config = replace(TowerConfig(), **{k: v for k, v in overrides.items() if v is not None})
    typer.echo(json.dumps(train_and_ship(settings, config, work_dir=work_dir, version=version), indent=2))


def teacher_scores_command(
    ranker_dir: Path = typer.Argument(..., help="a trained ranker artifact (model.pt + config.json), scored in fp32"),
    out: Path = typer.Option(Path("artifacts/teacher_scores.npz"), help="where the scores go"),
    limit: int = typer.Option(0, help="score a seeded sample of this many distinct train pairs (0 = all)"),
    seed: int = typer.Option(13, help="sampling seed"),
) -> None:
    """The student's distillation targets: a ranker's fp32 scores of train pairs, as the recipe makes them
    (training/biencoder/teacher_scores.py says why fp32)."""
    from training.biencoder.teacher_scores import distillation_targets, save_teacher_scores
    from training.data import labelled_pairs, split_frame

    settings = Settings()
    train = split_frame(labelled_pairs(settings.data_dir), "train")
    save_teacher_scores(out, distillation_targets(ranker_dir, train, n=limit or None, seed=seed,
                                                  threads=settings.intra_op_threads))
    typer.echo(f"teacher scores: {out}")


def label_command(
    out: Path = typer.Option(Path("artifacts/teacher_labels.parquet"), help="labels (parquet) + report (.json)"),
    split: str = typer.Option("train", help="split whose pairs are judged"),
    limit: int = typer.Option(0, help="judge a random sample of this many pairs (0 = all)"),
    mode: str = typer.Option("none", help="none | reweight | rethreshold the teacher's labels to --target"),
    target: str = typer.Option("", help="target shares 'irrelevant,partial,exact', e.g. 0.16,0.37,0.47"),
) -> None:
    """LLM teacher labels from an OpenAI-compatible endpoint (SHOPRANK_TEACHER_BASE_URL / _MODEL / _API_KEY)."""
    from training.labels.run import label_split
    from training.labels.settings import TeacherSettings

    if mode != "none" and not target:
        raise typer.BadParameter("--mode reweight/rethreshold needs --target shares")
    shares = tuple(float(x) for x in target.split(",")) if target else None
    report = label_split(teacher=TeacherSettings(), data_dir=Settings().data_dir, split=split, out_path=out,
                         limit=limit or None, target=shares, mode=mode)
    typer.echo(report)


def export_command(
    ranker_dir: Path = typer.Option(None, help="a trained ranker artifact dir (model.pt + config.json)"),
    encoder_source: str = typer.Option("", help="a sentence-transformers model dir; empty = zero-shot base model"),
    version: int = typer.Option(1, help="version directory to write"),
    fp32: bool = typer.Option(False, help="serve fp32 instead of int8 per-channel"),
    encoder: bool = typer.Option(True, "--encoder/--no-encoder", help="--no-encoder: export the ranker alone"),
) -> None:
    """Export the encoder (and a ranker, if given) as ONNX into the model repository."""
    from training.export.onnx_export import export_encoder, export_ranker

    settings = Settings()
    if not encoder and not ranker_dir:
        raise typer.BadParameter("--no-encoder leaves nothing to export without --ranker-dir")
    if encoder:
        export_encoder(repo=settings.model_repo, name=settings.encoder_model, version=version,
                       source=encoder_source or None, int8=not fp32)
    if ranker_dir:
        export_ranker(artifact_dir=ranker_dir, repo=settings.model_repo, name=settings.ranker_model,
                      version=version, int8=not fp32)


def eval_command(
    split: str = typer.Option("test", help="test (the held-out figures) or validation (for tuning)"),
    out: Path = typer.Option(None, help="also write the markdown table here"),
    report: Path = typer.Option(None, "--report", help="also write the full report (report.md + PNGs) into this "
                                                       "directory, e.g. docs/report (≈ 15 min on 2 cores)"),
    student: Path = typer.Option(Path("artifacts/student"), "--student",
                                 help="sentence-transformers student dir for --report; skipped when absent"),
) -> None:
    """NDCG@10 of BM25, the zero-shot encoder and the ranker; ranker RMSE, 3-level accuracy and macro-F1."""
    from training.evaluate.ranking_report import evaluate_test_split, to_markdown

    settings = Settings()
    verify_data(settings.data_dir)
    if report:
        import shlex
        import sys

        from training.evaluate.report import ReportConfig, build_report

        command = "shoprank " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        result = build_report(settings, ReportConfig(out_dir=report, command=command, student=student, split=split))
        rows = [r for r in result.headline if r.ndcg10 is not None or r.rmse is not None]
        table = to_markdown(rows)
        typer.echo(f"report: {result.path} ({sum(result.seconds.values()) / 60:.1f} min)")
    else:
        table = to_markdown(evaluate_test_split(settings, split=split))
    typer.echo(table)
    if out:
        out.write_text(table + "\n")


def eval_retrieval_command(
    student: Path = typer.Argument(..., help="a sentence-transformers student dir (artifacts/student*)"),
    split: str = typer.Option("validation", help="validation (choose between students) or test (report figures)"),
    dims: str = typer.Option(CUTS, help="Matryoshka cuts to measure"),
    k: int = typer.Option(100, help="recall@k"),
    rotation: bool = typer.Option(False, help="also measure the cuts after an energy-ordered rotation fitted on "
                                              "train queries + catalogue items (training/evaluate/rotation.py)"),
    funnel: bool = typer.Option(True, help="also measure the served Matryoshka funnel "
                                           "(SHOPRANK_INDEX_SHORTLIST_DIM / _FACTOR; service/index/funnel.py)"),
) -> None:
    """Catalogue recall@k of a student's exact items at each cut (and through the served funnel): the quick
    check between training runs (training/evaluate/student_recall.py)."""
    from training.evaluate.student_recall import student_recall_lines

    for line in student_recall_lines(Settings(), student, split=split, dims=tuple(int(d) for d in dims.split(",")),
                                     k=k, rotation=rotation, funnel=funnel):
        typer.echo(line)


def prepare_command() -> None:
    """Check data and models, then build (or restore) the item and keyphrase indexes and snapshot them.

    The models are shipped in ``model_repo/`` (int8 ONNX); ``shoprank train ranker`` + ``shoprank export``
    rebuild them. The first run encodes the whole catalogue (≈ 2 min on 2 cores); later runs restore snapshots.
    """
    import time

    from service.inference.repository import latest_version
    from service.runtime import build_runtime

    settings = Settings()
    verify_data(settings.data_dir)
    for model in (settings.encoder_model, settings.ranker_model):
        typer.echo(f"model {latest_version(settings.model_repo, model).tag} found")
    started = time.perf_counter()
    runtime = build_runtime(settings)
    typer.echo(f"indexes ready in {time.perf_counter() - started:.1f}s: {len(runtime.items)} items, "
               f"{len(runtime.keyphrases)} keyphrases (snapshots in {settings.state_dir}/)")
    runtime.close()


def calibrate_command(
    version: int = typer.Option(None, help="the exported version to fit (unset: the latest, i.e. the served one)"),
) -> None:
    """Fit the ranker's relevance floor, label cuts and engagement priors on the validation split and write them
    into that version's model card; the same floor for the first phase of phased ranking when one is served
    (training/calibrate.py)."""
    from training.calibrate import calibrate_first_phase, calibrate_ranker

    settings = Settings()
    typer.echo(calibrate_ranker(settings, version=version))
    typer.echo({"first_phase": calibrate_first_phase(settings, version=version)})


def verify_data_command() -> None:
    """Check the vendored data file against its sha256."""
    verify_data(Settings().data_dir)
    typer.echo("data OK")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("export")(export_command)
    app.command("eval")(eval_command)
    app.command("eval-retrieval")(eval_retrieval_command)
    app.command("verify-data")(verify_data_command)
    app.command("prepare")(prepare_command)
    app.command("calibrate")(calibrate_command)
    app.command("teacher-scores")(teacher_scores_command)
    app.command("label")(label_command)
