"""``shoprank train recipe``: the whole offline recipe as one resumable command.

teacher labels → unified multi-task ranker → the ranker's scores on train pairs (distillation targets)
→ bi-encoder student → a linear adaptor fitted against the whole catalogue → ONNX (fp32 + int8
per-channel) into a Triton model repository, under the model names the service reads → ONNX-vs-torch
parity, which gates the int8 encoder (below ``training/export/parity.ENCODER_INT8_MIN_COSINE`` the fp32 export
is served and its card says why) → relevance floor, label cuts and engagement priors fitted on validation
(``training/calibrate.py``) → the first phase of phased ranking (an MLP over the exported encoder's vectors,
distilled from the exported ranker, ``training/first_phase/``) and its own floor → the held-out table on test.
Every step after the export addresses the exported version, even when it is below the repository's latest.

Each step writes its output under ``work_dir`` and is skipped when that output is already there, so a
run that was stopped picks up where it was. The teacher is the human labels in ``data/`` unless
``teacher_labels`` names a ``shoprank label`` file (an LLM's judgements), whose expected rating then
replaces the human one on the pairs it judged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from service.settings import Settings
from training.biencoder.adaptor import AdaptorConfig
from training.biencoder.train import StudentConfig
from training.cross_encoder.train import RankerConfig
from training.export.parity import ENCODER_INT8_MIN_COSINE
from training.first_phase.step import FirstPhaseRun
from training.first_phase.train import FirstPhaseConfig
from training.names import STUDENT_CARD, TASKS

log = logging.getLogger(__name__)

ALL_TASKS = list(TASKS)  # the unified ranker's tasks, in the card's order


@dataclass(frozen=True)
class RecipePreset:
    """Sizes of one run of the recipe; ``quick`` is a smoke run (≤ 10 min), ``full`` the ≤ 2 h one on 2 cores."""

    name: str
    ranker: RankerConfig
    ranker_rows_per_task: int | None  # None = every train row of every task
    student: StudentConfig
    distillation_pairs: int  # train pairs the fresh ranker scores for the student's KD loss
    parity_samples: int = 64
    # a further pass over the same rows, continuing from the first at a lower learning rate (None: one pass);
    # its tasks and routing must be the first pass's
    ranker_second_pass: RankerConfig | None = None
    # a linear map on the frozen student, fitted with a softmax over the catalogue (None: export the student as is)
    adaptor: AdaptorConfig | None = None
    # the first phase of phased ranking, distilled from the exported ranker over the exported encoder's vectors
    # (None: no first phase)
    first_phase: FirstPhaseRun | None = None
    # the int8 encoder is served only when its worst parity cosine reaches this (else fp32, said in the card)
    encoder_int8_floor: float = ENCODER_INT8_MIN_COSINE


PRESETS = {
    "quick": RecipePreset("quick", RankerConfig(tasks=ALL_TASKS, routing="prefix", max_tokens=48), 1_500,
                          StudentConfig.quick(max_seq_length=32), distillation_pairs=2_000,
                          adaptor=AdaptorConfig(epochs=1, catalogue_sample=5_000, max_queries=1_000),
                          first_phase=FirstPhaseRun(FirstPhaseConfig(hidden=(256,), epochs=8, max_seconds=60),
                                                    max_train_pairs=3_000, max_validation_pairs=1_000)),
    "full": RecipePreset("full", RankerConfig(tasks=ALL_TASKS, routing="prefix"), None, StudentConfig.full(),
                         distillation_pairs=15_000,
                         ranker_second_pass=RankerConfig(tasks=ALL_TASKS, routing="prefix", lr=2e-5, head_lr=2e-4,
                                                         seed=14),
                         adaptor=AdaptorConfig(),
                         first_phase=FirstPhaseRun(alternatives=(FirstPhaseConfig(loss="bce"),))),
}


@dataclass
class RecipeRun:
    """What a run did: minutes per step (a resumed step keeps the earlier run's), the versions and the figures."""

    preset: str
    work_dir: Path
    model_repo: Path
    version: int
    teacher: str = "human labels (data/)"
    seconds: dict[str, float] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)  # steps done by an earlier run (their seconds are from it)
    figures: dict = field(default_factory=dict)
    table: str = ""

    def summary(self) -> str:
        steps = "\n".join(f"| {name}{' (earlier run)' if name in self.resumed else ''} | {sec / 60:.1f} |"
                          for name, sec in self.seconds.items())
        return (f"# Recipe run ({self.preset})\n\nTeacher: {self.teacher}. Models: `{self.model_repo}` version "
                f"{self.version}.\n\n| step | minutes |\n| --- | --- |\n{steps}\n| **total** | "
                f"**{sum(self.seconds.values()) / 60:.1f}** |\n\n## Held-out test split\n\n{self.table}\n\n"
                f"## Checks\n\n```json\n{json.dumps(self.figures, indent=2)}\n```\n")


def apply_teacher_labels(pairs: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Train pairs relabelled by a ``shoprank label`` file: relevance = 1 + the teacher's expected rating.

    Pairs the teacher did not judge are dropped: the recipe then learns from the teacher alone."""
    from service.ranking.ordinal import label_from_raw

    judged = labels[["query", "title", "expected"]].drop_duplicates(["query", "title"])
    out = pairs.merge(judged, on=["query", "title"], how="inner")
    out["relevance"] = 1.0 + out.pop("expected").astype(float)
    out["label"] = label_from_raw(out["relevance"].to_numpy())
    return out.reset_index(drop=True)


def run_recipe(*, preset: RecipePreset, work_dir: Path, model_repo: Path | None = None, version: int = 1,
               teacher_labels: Path | None = None, settings: Settings | None = None) -> RecipeRun:
    """Run (or resume) every step; returns the run record, also written to ``work_dir/recipe.{md,json}``.

    Everything after the export addresses the exported version explicitly: ``version`` of the model names
    the service reads (``settings.encoder_model`` / ``ranker_model`` / ``first_phase_model``), scored through
    a repository view pinned to it (``training/export/pinned.py``), so exporting below the latest version
    calibrates and evaluates that version, in its own cards."""
    from training.biencoder.teacher_scores import (
        distillation_targets,
        load_teacher_scores,
        save_teacher_scores,
    )
    from training.biencoder.train import train_student
    from training.calibrate import calibrate_first_phase, calibrate_ranker
    from training.data import labelled_pairs, sample_rows, split_frame
    from training.evaluate.ranking_report import evaluate_test_split, row_named, to_markdown
    from training.export.cards import record_in_card
    from training.export.onnx_export import export_encoder, export_ranker
    from training.export.parity import encoder_parity, encoder_precision_gate, ranker_parity
    from training.export.pinned import pinned_settings
    from training.tasks import query_item_rows, ranker_rows

    settings = settings or Settings()
    work_dir.mkdir(parents=True, exist_ok=True)
    repo = model_repo or work_dir / "model_repo"
    run = RecipeRun(preset=preset.name, work_dir=work_dir, model_repo=repo, version=version)
    encoder_name, ranker_name, first_phase_name = (settings.encoder_model, settings.ranker_model,
                                                   settings.first_phase_model)
    encoder_dir, ranker_version_dir = repo / encoder_name / str(version), repo / ranker_name / str(version)

    def card_of(version_dir: Path) -> dict:
        return json.loads((version_dir / "shoprank.json").read_text())

    record = work_dir / "recipe.json"
    earlier = json.loads(record.read_text())["seconds"] if record.exists() else {}

    def step(name: str, done: Path | Callable[[], bool], action) -> None:
        if done.exists() if isinstance(done, Path) else done():
            log.info("recipe: %s already done", name)
            run.seconds[name] = earlier.get(name, 0.0)
            run.resumed.append(name)
            return
        log.info("recipe: %s …", name)
        started = time.time()
        action()
        run.seconds[name] = round(time.time() - started, 1)
        log.info("recipe: %s done in %.1f min", name, run.seconds[name] / 60)

    pairs = labelled_pairs(settings.data_dir)
    train = split_frame(pairs, "train")
    if teacher_labels is not None:
        train = apply_teacher_labels(train, pd.read_parquet(teacher_labels))
        run.teacher = f"{teacher_labels} ({len(train)} judged train pairs)"
    ranker_dir, student_dir = work_dir / "ranker", work_dir / "student"
    scores_path = work_dir / "distillation_scores.npz"
    ranker_config = replace(preset.ranker, threads=settings.intra_op_threads)

    def train_ranker_step(config: RankerConfig, out_dir: Path) -> None:
        from training.cross_encoder.train import train_ranker

        # the first pass's seed samples the rows, so a second pass sees the same ones (in another order)
        rows = ranker_rows(train, tasks=config.tasks, limit=preset.ranker_rows_per_task, seed=ranker_config.seed)
        train_ranker(rows, config, out_dir)

    step("ranker", ranker_dir / "config.json", lambda: train_ranker_step(ranker_config, ranker_dir))
    if preset.ranker_second_pass is not None:
        first_pass, ranker_dir = ranker_dir, work_dir / "ranker-pass2"
        second = replace(preset.ranker_second_pass, threads=settings.intra_op_threads, init_from=str(first_pass))
        step("ranker (second pass)", ranker_dir / "config.json", lambda: train_ranker_step(second, ranker_dir))
    step("distillation scores", scores_path, lambda: save_teacher_scores(scores_path, distillation_targets(
        ranker_dir, train, n=preset.distillation_pairs, threads=settings.intra_op_threads)))
    step("student", student_dir / STUDENT_CARD, lambda: train_student(
        rows=query_item_rows(train), teacher=load_teacher_scores(scores_path), config=preset.student,
        out_dir=student_dir))

    if preset.adaptor is not None:
        trained_student, student_dir = student_dir, work_dir / "student-adapted"

        def adaptor_step() -> None:
            from service.catalogue import load_catalogue
            from training.biencoder.adaptor import adapt_student

            catalogue = load_catalogue(settings.data_dir)
            adapt_student(student_dir=trained_student, out_dir=student_dir, pairs=train, item_ids=catalogue.item_ids,
                          item_titles=catalogue.item_titles,
                          config=replace(preset.adaptor, threads=settings.intra_op_threads),
                          validation=split_frame(pairs, "validation"))

        step("adaptor", student_dir / STUDENT_CARD, adaptor_step)

    card = {"recipe": {"preset": preset.name, "teacher": run.teacher}}

    def export_step() -> None:
        student_meta = json.loads((student_dir / STUDENT_CARD).read_text())
        export_encoder(repo=repo, name=encoder_name, version=version, source=str(student_dir), card=card | {
            "source": f"student of the recipe ({preset.name}): MNRL clicks + contrastive labels + "
                      f"{student_meta['kd_loss']} KD, Matryoshka {student_meta['matryoshka_dims']}"
                      + (", + catalogue-softmax adaptor" if "adaptor" in student_meta else ""),
            "matryoshka_dims": student_meta["matryoshka_dims"],
            "prefixes": student_meta["prefixes"]})
        export_ranker(artifact_dir=ranker_dir, repo=repo, name=ranker_name, version=version, card=card)

    # the ranker is exported after the encoder, so its card marks the step done
    step("export", ranker_version_dir / "shoprank.json", export_step)

    def parity_step() -> None:
        """ONNX against torch (recorded first, so a stopped step does not measure a swapped file again), then
        the gate: an int8 encoder below the floor is not served (fp32 instead)."""
        if "parity" not in card_of(encoder_dir) or "parity" not in card_of(ranker_version_dir):
            sample = sample_rows(train, preset.parity_samples, seed=0)
            record_in_card(encoder_dir, "parity", encoder_parity(encoder_dir, student_dir, sample["title"].tolist()))
            record_in_card(ranker_version_dir, "parity", ranker_parity(
                ranker_version_dir, ranker_dir, sample["query"].tolist(), sample["title"].tolist()))
        decision = encoder_precision_gate(encoder_dir, card_of(encoder_dir)["parity"], floor=preset.encoder_int8_floor)
        if decision["served"] != "int8":
            log.warning("recipe: %s", decision["reason"])
        record_in_card(encoder_dir, "precision_gate", decision)
        record_in_card(encoder_dir, "precision", decision["served"])

    step("parity", lambda: "precision_gate" in card_of(encoder_dir), parity_step)
    run.figures["parity"] = card_of(encoder_dir)["parity"] | card_of(ranker_version_dir)["parity"]
    run.figures["encoder_precision"] = card_of(encoder_dir)["precision_gate"]

    serve = settings.model_copy(update={"model_repo": repo, "inference": "embedded"})
    # done when this version's card has its floor, not when some earlier export was calibrated: a re-export
    # (another --version or --model-repo) is calibrated again
    step("calibrate", lambda: "calibration" in card_of(ranker_version_dir),
         lambda: calibrate_ranker(serve, version=version))
    run.figures["calibration"] = card_of(ranker_version_dir)["calibration"]
    pinned_models = {encoder_name: version, ranker_name: version}
    first_phase_dir = repo / first_phase_name / str(version)
    if preset.first_phase is not None:
        from training.first_phase.step import train_first_phase

        def first_phase_step() -> None:
            """Train and export the first phase over the exported encoder and ranker, then fit its floor on
            validation into the same version's card (a re-export keeps a calibrated floor)."""
            if not (first_phase_dir / "shoprank.json").exists():
                with pinned_settings(serve, pinned_models) as pinned:
                    train_first_phase(settings=pinned, work_dir=work_dir / "first_phase", repo=repo, version=version,
                                      run=replace(preset.first_phase, model=replace(
                                          preset.first_phase.model, threads=settings.intra_op_threads)))
            with pinned_settings(serve, pinned_models) as pinned:  # a fresh view: it holds the new first phase
                calibrate_first_phase(pinned, version=version)

        step("first phase", lambda: "min_relevance" in card_of(first_phase_dir).get("calibration", {})
             if (first_phase_dir / "shoprank.json").exists() else False, first_phase_step)
        run.figures["first_phase"] = card_of(first_phase_dir)["validation"]
        run.figures["first_phase_floor"] = card_of(first_phase_dir)["calibration"]["min_relevance"]
        pinned_models[first_phase_name] = version

    started = time.time()
    with pinned_settings(serve, pinned_models) as pinned:
        rows = evaluate_test_split(pinned)
        encoder_row, ranker_row = row_named(rows, "encoder"), row_named(rows, "ranker")
        evaluation = {"split": "test", "command": "shoprank train recipe "
                                                  "(training/evaluate/ranking_report.evaluate_test_split)"}
        if preset.first_phase is not None:
            from training.evaluate.ranking_report import Row
            from training.first_phase.evaluate import split_figures

            fp = split_figures(pinned, split="test", model=first_phase_name)
            rows.append(Row(f"first phase alone ({fp['model']}, over {fp['encoder']} vectors)", fp["ndcg10"],
                            fp["rmse"], fp["accuracy"], fp["macro_f1"], key="first_phase"))
            record_in_card(first_phase_dir, "evaluation", evaluation | {
                "command": "shoprank train recipe (training/first_phase/evaluate.split_figures)",
                "ndcg10": fp["ndcg10"], "rmse": fp["rmse"], "accuracy": fp["accuracy"], "macro_f1": fp["macro_f1"]})
    run.table = to_markdown(rows)
    run.seconds["evaluate (test)"] = round(time.time() - started, 1)
    record_in_card(encoder_dir, "evaluation", evaluation | {"ndcg10": encoder_row.ndcg10})
    record_in_card(ranker_version_dir, "evaluation", evaluation | {
        "ndcg10": ranker_row.ndcg10, "rmse": ranker_row.rmse, "accuracy": ranker_row.accuracy,
        "macro_f1": ranker_row.macro_f1})

    (work_dir / "recipe.md").write_text(run.summary())
    record.write_text(json.dumps(asdict(run), indent=2, default=str))
    return run
