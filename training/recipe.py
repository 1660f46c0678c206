"""``shoprank train recipe``: the whole offline recipe as one resumable command.

teacher labels → unified multi-task ranker → the ranker's scores on train pairs (distillation targets)
→ bi-encoder student → a linear adaptor fitted against the whole catalogue → ONNX (fp32 + int8
per-channel) into a Triton model repository → ONNX-vs-torch parity → relevance floor, label cuts and
engagement priors calibrated on validation → the first phase of phased ranking (an MLP over the exported
encoder's vectors, distilled from the exported ranker, ``training/first_phase/``) → the held-out table on test.

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
from training.first_phase.step import FirstPhaseRun
from training.first_phase.train import FirstPhaseConfig

log = logging.getLogger(__name__)

ALL_TASKS = ["query_item", "item_item", "query_query"]


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


def distillation_targets(ranker_dir: Path, pairs: pd.DataFrame, *, n: int, seed: int = 13) -> pd.DataFrame:
    """``left, right, score``: the fresh ranker's expected rating (1–3) on a sample of train query–item pairs."""
    from training.biencoder.teacher_scores import score_pairs
    from training.cross_encoder.predict import TorchPairScorer

    distinct = pairs[["query", "title"]].drop_duplicates()
    sample = distinct.sample(n=min(n, len(distinct)), random_state=seed)
    lefts, rights = sample["query"].tolist(), sample["title"].tolist()
    return pd.DataFrame({"left": lefts, "right": rights,
                         "score": score_pairs(scorer=TorchPairScorer(ranker_dir), lefts=lefts, rights=rights)})


def run_recipe(*, preset: RecipePreset, work_dir: Path, model_repo: Path | None = None, version: int = 1,
               teacher_labels: Path | None = None, settings: Settings | None = None) -> RecipeRun:
    """Run (or resume) every step; returns the run record, also written to ``work_dir/recipe.{md,json}``."""
    from training.biencoder.teacher_scores import load_teacher_scores, save_teacher_scores
    from training.biencoder.train import train_student
    from training.data import labelled_pairs, split_frame
    from training.evaluate.calibrate import calibrate_served_ranker
    from training.evaluate.ranking_report import evaluate_test_split, to_markdown
    from training.export.cards import record_in_card
    from training.export.onnx_export import export_encoder, export_ranker
    from training.export.parity import encoder_parity, ranker_parity
    from training.recipes import ranker_rows
    from training.tasks import query_item_rows

    settings = settings or Settings()
    work_dir.mkdir(parents=True, exist_ok=True)
    repo = model_repo or work_dir / "model_repo"
    run = RecipeRun(preset=preset.name, work_dir=work_dir, model_repo=repo, version=version)

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
    step("distillation scores", scores_path, lambda: save_teacher_scores(
        scores_path, distillation_targets(ranker_dir, train, n=preset.distillation_pairs)))
    step("student", student_dir / "shoprank_student.json", lambda: train_student(
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

        step("adaptor", student_dir / "shoprank_student.json", adaptor_step)

    card = {"recipe": {"preset": preset.name, "teacher": run.teacher}}

    def export_step() -> None:
        student_meta = json.loads((student_dir / "shoprank_student.json").read_text())
        export_encoder(repo=repo, version=version, source=str(student_dir), card=card | {
            "source": f"student of the recipe ({preset.name}): MNRL clicks + contrastive labels + "
                      f"{student_meta['kd_loss']} KD, Matryoshka {student_meta['matryoshka_dims']}"
                      + (", + catalogue-softmax adaptor" if "adaptor" in student_meta else ""),
            "matryoshka_dims": student_meta["matryoshka_dims"],
            "prefixes": student_meta["prefixes"]})
        export_ranker(artifact_dir=ranker_dir, repo=repo, version=version, card=card)

    step("export", repo / "ranker" / str(version) / "shoprank.json", export_step)
    serve = settings.model_copy(update={"model_repo": repo, "inference": "embedded"})
    started = time.time()
    sample = train.sample(n=min(preset.parity_samples, len(train)), random_state=0)
    run.figures["parity"] = (
        encoder_parity(repo / "encoder" / str(version), student_dir, sample["title"].tolist())
        | ranker_parity(repo / "ranker" / str(version), ranker_dir, sample["query"].tolist(), sample["title"].tolist()))
    run.seconds["parity"] = round(time.time() - started, 1)
    # done when this version's card has its floor, not when some earlier export was calibrated: a re-export
    # (another --version or --model-repo) is calibrated again
    ranker_card = repo / "ranker" / str(version) / "shoprank.json"
    step("calibrate", lambda: "calibration" in json.loads(ranker_card.read_text()),
         lambda: calibrate_served_ranker(serve))
    run.figures["calibration"] = json.loads(ranker_card.read_text())["calibration"]
    if preset.first_phase is not None:
        from training.first_phase.step import train_first_phase

        first_phase_card = repo / "first_phase" / str(version) / "shoprank.json"
        step("first phase", first_phase_card, lambda: train_first_phase(
            settings=serve, work_dir=work_dir / "first_phase", repo=repo, version=version,
            run=replace(preset.first_phase, model=replace(preset.first_phase.model, threads=settings.intra_op_threads))))
        run.figures["first_phase"] = json.loads(first_phase_card.read_text())["validation"]
    started = time.time()
    rows = evaluate_test_split(serve)
    encoder_row, ranker_row = rows[-2], rows[-1]
    evaluation = {"split": "test", "command": "shoprank train recipe (training/evaluate/ranking_report.evaluate_test_split)"}
    if preset.first_phase is not None:
        from training.evaluate.ranking_report import Row
        from training.first_phase.evaluate import split_figures

        fp = split_figures(serve, split="test")
        rows.append(Row(f"first phase alone ({fp['model']}, over {fp['encoder']} vectors)", fp["ndcg10"], fp["rmse"],
                        fp["accuracy"], fp["macro_f1"]))
        record_in_card(repo / "first_phase" / str(version), "evaluation", evaluation | {
            "command": "shoprank train recipe (training/first_phase/evaluate.split_figures)",
            "ndcg10": fp["ndcg10"], "rmse": fp["rmse"], "accuracy": fp["accuracy"], "macro_f1": fp["macro_f1"]})
    run.table = to_markdown(rows)
    run.seconds["evaluate (test)"] = round(time.time() - started, 1)
    record_in_card(repo / "encoder" / str(version), "evaluation", evaluation | {"ndcg10": encoder_row.ndcg10})
    record_in_card(repo / "ranker" / str(version), "evaluation", evaluation | {
        "ndcg10": ranker_row.ndcg10, "rmse": ranker_row.rmse, "accuracy": ranker_row.accuracy,
        "macro_f1": ranker_row.macro_f1})

    (work_dir / "recipe.md").write_text(run.summary())
    record.write_text(json.dumps(asdict(run), indent=2, default=str))
    return run
