"""Offline commands: ``shoprank prepare``, ``train ranker``, ``export``, ``calibrate``, ``eval``, ``verify-data``.

Registered on the ``shoprank`` typer app by ``service/cli.py``; heavy imports stay inside the commands so the
serving CLI starts without torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import typer

from service.catalogue import HOME_DEPOT_SHA256, HOME_DEPOT_ZIP
from service.settings import Settings

train_app = typer.Typer(help="Train models on the vendored data (train split only).", no_args_is_help=True)


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
    epochs: float = typer.Option(1.0, help="passes over the train split"),
    limit: int = typer.Option(0, help="train on a random sample of this many pairs per task (0 = all)"),
    threads: int = typer.Option(2, help="torch CPU threads"),
    tasks: str = typer.Option("query_item", help="comma-separated: query_item, item_item, query_query"),
    routing: str = typer.Option("prefix", help="task routing: prefix | multihead | mhp"),
    private_layers: int = typer.Option(1, help="mhp only: private top transformer layers per task"),
    init_from: Path = typer.Option(None, help="continue from this ranker artifact (same tasks and routing)"),
    lr: float = typer.Option(5e-5, help="encoder learning rate (peak, linear decay)"),
    head_lr: float = typer.Option(1e-3, help="head learning rate (peak, linear decay)"),
    seed: int = typer.Option(13, help="shuffling and sampling seed"),
    w_pairwise: float = typer.Option(0.0, help="weight of the RankNet loss within a query (needs --batching group)"),
    batching: str = typer.Option("length", help="length: similar lengths per batch | group: whole queries per batch"),
) -> None:
    """Train a ranker: MiniLM + ordinal head (P(y≥1), P(y≥2)) + CTR/CVR heads (simulated engagement).

    One task is the single-task ranker (the served one is query_item); several make the unified
    multi-task ranker with the chosen routing."""
    from training.cross_encoder.train import RankerConfig
    from training.recipes import train_ranker_from_files

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    verify_data(settings.data_dir)
    config = RankerConfig(epochs=epochs, threads=threads, tasks=tasks.split(","), routing=routing,
                          private_layers=private_layers, init_from=str(init_from) if init_from else None,
                          lr=lr, head_lr=head_lr, seed=seed, w_pairwise=w_pairwise, batching=batching)
    train_ranker_from_files(data_dir=settings.data_dir, out_dir=out_dir, config=config, limit=limit or None)


@train_app.command("student")
def train_student_command(
    out_dir: Path = typer.Option(Path("artifacts/student"), help="sentence-transformers model dir to write"),
    teacher_scores: Path = typer.Option(None, help="ranker scores of the train pairs (shoprank teacher-scores)"),
    kd_loss: str = typer.Option("pearson", help="pearson | cosent | mse"),
    preset: str = typer.Option("full", help="full (the recipe's run, ≈ 20 min on 2 cores); uncapped (every train "
                                            "row, ≈ 45 min); trial (the earlier budgeted run of docs/training.md); "
                                            "or quick (a few minutes)"),
    max_seconds: float = typer.Option(0, help="stop after this much wall time and save (0 = no budget)"),
    clicks: bool = typer.Option(True, help="MNRL on simulated click positives (off: the label ablation)"),
    labels: bool = typer.Option(True, help="contrastive on the binarised labels (off: the label ablation)"),
    kd: bool = typer.Option(True, help="distillation from the ranker's scores (off: the label ablation)"),
    init_from: Path = typer.Option(None, help="continue from this student dir instead of the base model"),
    matryoshka_weights: str = typer.Option("", help="loss weight per Matryoshka cut 384,256,128,64 (empty: the "
                                                     "preset's), e.g. 1,1,1,12 to push the 64-d cut"),
    lr: float = typer.Option(0, help="peak learning rate (0: the preset's)"),
    max_steps: int = typer.Option(0, help="stop after this many steps (0: the preset's one pass)"),
    seed: int = typer.Option(13, help="sampling and shuffling seed"),
) -> None:
    """Bi-encoder student: MNRL on simulated clicks + contrastive on labels + KD, Matryoshka 384→64."""
    from training.biencoder.train import StudentConfig, train_student_from_files

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    presets = {"full": StudentConfig.full, "uncapped": StudentConfig, "trial": StudentConfig.trial,
               "quick": StudentConfig.quick}
    if preset not in presets:
        raise typer.BadParameter(f"--preset must be one of {', '.join(presets)}")
    overrides = {"seed": seed} | ({"lr": lr} if lr else {}) | ({"max_steps": max_steps} if max_steps else {})
    if matryoshka_weights:
        overrides["matryoshka_weights"] = tuple(float(w) for w in matryoshka_weights.split(","))
    config = presets[preset](kd_loss=kd_loss, max_train_seconds=max_seconds or None, use_clicks=clicks,
                             use_labels=labels, use_kd=kd, **overrides)
    if config.matryoshka_weights and len(config.matryoshka_weights) != len(config.matryoshka_dims):
        raise typer.BadParameter(f"--matryoshka-weights needs one weight per cut {config.matryoshka_dims}")
    train_student_from_files(data_dir=settings.data_dir, teacher_scores=teacher_scores, config=config, out_dir=out_dir,
                             base_model=str(init_from) if init_from else None)


@train_app.command("adaptor")
def train_adaptor_command(
    student: Path = typer.Argument(..., help="a sentence-transformers student dir (artifacts/student*)"),
    out_dir: Path = typer.Option(None, help="where the adapted student goes (default <student>-adapted)"),
    epochs: int = typer.Option(5, help="passes over the train queries"),
    lr: float = typer.Option(1e-3, help="Adam learning rate of the map"),
    min_label: int = typer.Option(1, help="a train pair at this label or above is a positive (1 partial, 2 exact)"),
    weights: str = typer.Option("1,1,1,4", help="loss weight per Matryoshka cut 384,256,128,64"),
    catalogue_sample: int = typer.Option(0, help="negatives: this many random products (0: the whole catalogue)"),
    validate: bool = typer.Option(True, help="log validation recall@100 per epoch (recorded in the card)"),
    seed: int = typer.Option(13, help="shuffling seed"),
) -> None:
    """Fit a linear map on a frozen student against the whole catalogue (training/biencoder/adaptor.py)."""
    from service.catalogue import load_catalogue
    from training.biencoder.adaptor import AdaptorConfig, adapt_student
    from training.data import labelled_pairs, split_frame

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    cut_weights = tuple(float(w) for w in weights.split(","))
    config = AdaptorConfig(weights=cut_weights, epochs=epochs, lr=lr, min_label=min_label, seed=seed,
                           catalogue_sample=catalogue_sample or None, threads=settings.intra_op_threads)
    if len(cut_weights) != len(config.dims):
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
    teacher: Path = typer.Option(Path("model_repo/ranker/3"), help="the exported ranker version to drop layers from"),
    keep_layers: str = typer.Option("0,2,4", help="transformer layers of the teacher the student keeps"),
    loss: str = typer.Option("mse", help="mse (keeps the teacher's logit scale) | pearson"),
    epochs: float = typer.Option(1.0, help="passes over the target pairs"),
    lr: float = typer.Option(1e-4, help="peak learning rate (linear warm-up and decay)"),
    max_seconds: float = typer.Option(0, help="wall-clock budget; the schedule is planned to end with it (0 = none)"),
    limit: int = typer.Option(0, help="distil on a random sample of this many pairs (0 = all)"),
    out_dir: Path = typer.Option(Path("artifacts/ranker-lite/student"), help="the student ranker artifact"),
    export_repo: Path = typer.Option(None, help="also export (int8 + fp32) and calibrate on validation into this "
                                                "model repository, e.g. artifacts/ranker-lite/model_repo"),
    version: int = typer.Option(1, help="version directory of the export"),
    seed: int = typer.Option(13, help="sampling and shuffling seed"),
    init_from: Path = typer.Option(None, help="continue this student artifact (same --keep-layers)"),
    threads: int = typer.Option(0, help="torch / ONNX Runtime threads (0: SHOPRANK_INTRA_OP_THREADS); 1 is faster "
                                        "on cores shared with other jobs"),
) -> None:
    """A cheaper second phase: the served ranker with layers dropped, distilled on its four logits."""
    from training.cross_encoder.distill import LiteConfig, distil_lite_ranker, load_targets, train_pairs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = LiteConfig(teacher=str(teacher), keep_layers=[int(k) for k in keep_layers.split(",")], loss=loss,
                        epochs=epochs, lr=lr, max_seconds=max_seconds or None, limit=limit or None, seed=seed,
                        threads=threads or Settings().intra_op_threads, init_from=str(init_from) if init_from else None)
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

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
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
    hidden: str = typer.Option("256", help="hidden layer widths, comma-separated"),
    loss: str = typer.Option("mse,bce", help="mse on the ranker's logits | bce on its probabilities | mse,bce: fit "
                                         "both, export the one closer to the ranker on validation"),
    epochs: int = typer.Option(12, help="passes over the train pairs (best validation epoch kept)"),
    max_seconds: float = typer.Option(240.0, help="training-time budget (the epochs stop there)"),
    retrieved_k: int = typer.Option(0, help="also learn from each train query's top-k retrieved titles (0 = none)"),
    retrieved_max_pairs: int = typer.Option(40_000, help="cap on the retrieved pairs the ranker scores"),
    int8_share: float = typer.Option(0.5, help="share of item vectors replaced by the int8 store's round trip"),
    threads: int = typer.Option(2, help="torch CPU threads"),
    train_scores: Path = typer.Option(None, help="use these ranker scores of train pairs (a subset scored earlier) "
                                                 "instead of scoring every train pair"),
) -> None:
    """The first phase of phased ranking: an MLP over the served encoder's two vectors, distilled from the ranker."""
    from training.first_phase.step import FirstPhaseRun, train_first_phase
    from training.first_phase.train import FirstPhaseConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings().model_copy(update={"model_repo": model_repo, "inference": "embedded"})
    verify_data(settings.data_dir)
    configs = [FirstPhaseConfig(hidden=tuple(int(h) for h in hidden.split(",") if h), loss=kind, epochs=epochs,
                                max_seconds=max_seconds, int8_share=int8_share, threads=threads)
               for kind in loss.split(",")]
    card = train_first_phase(settings=settings, work_dir=work_dir, repo=model_repo, version=version,
                             run=FirstPhaseRun(model=configs[0], alternatives=tuple(configs[1:]), retrieved_k=retrieved_k,
                                               retrieved_max_pairs=retrieved_max_pairs or None,
                                               train_scores=train_scores))
    typer.echo(json.dumps(card, indent=2))


def teacher_scores_command(
    out: Path = typer.Option(Path("artifacts/teacher_scores.npz"), help="where the scores go"),
    split: str = typer.Option("train", help="split whose pairs are scored"),
) -> None:
    """Score a split's pairs with the served ranker (the student's distillation targets)."""
    from training.biencoder.teacher_scores import write_teacher_scores

    settings = Settings()
    write_teacher_scores(settings=settings, data_dir=settings.data_dir, out_path=out, split=split)


def label_command(
    out: Path = typer.Option(Path("artifacts/teacher_labels.parquet"), help="labels (parquet) + report (.json)"),
    split: str = typer.Option("train", help="split whose pairs are judged"),
    limit: int = typer.Option(0, help="judge a random sample of this many pairs (0 = all)"),
    mode: str = typer.Option("none", help="none | reweight | rethreshold the teacher's labels to --target"),
    target: str = typer.Option("", help="target shares 'irrelevant,partial,exact', e.g. 0.16,0.37,0.47"),
) -> None:
    """LLM teacher labels from an OpenAI-compatible endpoint (SHOPRANK_TEACHER_BASE_URL / _MODEL / _API_KEY)."""
    from training.labels.run import label_split

    if mode != "none" and not target:
        raise typer.BadParameter("--mode reweight/rethreshold needs --target shares")
    shares = tuple(float(x) for x in target.split(",")) if target else None
    settings = Settings()
    report = label_split(settings=settings, data_dir=settings.data_dir, split=split, out_path=out,
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

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
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
    dims: str = typer.Option("384,256,128,64", help="Matryoshka cuts to measure"),
    k: int = typer.Option(100, help="recall@k"),
    rotation: bool = typer.Option(False, help="also measure the cuts after an energy-ordered rotation fitted on "
                                              "train queries + catalogue items (training/evaluate/rotation.py)"),
    funnel: bool = typer.Option(True, help="also measure the served Matryoshka funnel "
                                           "(SHOPRANK_INDEX_SHORTLIST_DIM / _FACTOR; service/index/funnel.py)"),
) -> None:
    """Catalogue recall@k of a student's exact items at each cut (and through the served funnel): the quick
    check between training runs."""
    from dataclasses import replace

    import numpy as np

    from service.catalogue import load_catalogue
    from training.data import labelled_pairs, split_frame
    from training.evaluate.embeddings import student_embeddings
    from training.evaluate.retrieval import funnel_recall, recall_by_dim
    from training.evaluate.rotation import energy_rotation

    settings = Settings()
    pairs = labelled_pairs(settings.data_dir)
    frame = split_frame(pairs, split)
    catalogue = load_catalogue(settings.data_dir)
    queries = sorted(frame["query"].unique())
    train_queries = sorted(split_frame(pairs, "train")["query"].unique()) if rotation else []
    embeddings = student_embeddings(student, queries=queries + train_queries, item_ids=catalogue.item_ids,
                                    item_titles=catalogue.item_titles)
    train_query_vectors = embeddings.query_vectors[len(queries):]
    embeddings = replace(embeddings, queries=queries, query_vectors=embeddings.query_vectors[: len(queries)])
    cuts = [int(d) for d in dims.split(",")]
    variants = {"": embeddings}
    if rotation:  # fitted on train queries and the catalogue: no query of the evaluated split
        turn = energy_rotation(np.vstack([train_query_vectors, embeddings.item_vectors]))
        variants[" rotated"] = replace(embeddings, query_vectors=embeddings.query_vectors @ turn,
                                       item_vectors=embeddings.item_vectors @ turn)
    for label, variant in variants.items():
        recall = recall_by_dim(variant, frame, dims=cuts, k=k)
        for d in cuts:
            typer.echo(f"{student.name}{label} {split} recall@{k} {d}-d {recall[d]:.4f} "
                       f"({recall[d] / recall[cuts[0]]:.1%} of {cuts[0]}-d)")
        if funnel and settings.funnel_dim and label == "":
            short, factor, precision = settings.funnel_dim, settings.index_shortlist_factor, settings.index_full_precision
            got = funnel_recall(variant, frame, shortlist_dim=short, shortlist_factor=factor, full_precision=precision,
                                k=k)
            typer.echo(f"{student.name} {split} recall@{k} funnel {short}-d x{factor} -> "
                       f"{variant.item_vectors.shape[1]}-d ({precision}) {got:.4f} "
                       f"({got / recall[cuts[0]]:.1%} of {cuts[0]}-d)")


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


def calibrate_command() -> None:
    """Fit the served ranker's relevance floor on the validation split and write it into its model card; the
    same for the first phase of phased ranking when one is served."""
    from training.evaluate.calibrate import calibrate_first_phase, calibrate_served_ranker

    typer.echo(calibrate_served_ranker(Settings()))
    typer.echo({"first_phase": calibrate_first_phase(Settings())})


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
