"""``shoprank eval --report`` end to end on the real ONNX models and the vendored data (small limits)."""

from pathlib import Path

import numpy as np

from service.settings import Settings
from training.cross_encoder.train import RankerConfig, train_ranker_from_files
from training.evaluate.report import ReportConfig, build_report

ROOT = Path(__file__).resolve().parents[2]


def _tiny_rankers(artifacts: Path) -> None:
    """Two routing variants of a multi-task ranker and a single-task baseline, a few steps each."""
    tasks = ["query_item", "item_item", "query_query"]
    for name, config in (("mt-prefix", RankerConfig(tasks=tasks, routing="prefix", batch_size=8)),
                         ("mt-multihead", RankerConfig(tasks=tasks, routing="multihead", batch_size=8)),
                         ("st-query_query", RankerConfig(tasks=["query_query"], batch_size=8))):
        train_ranker_from_files(data_dir=ROOT / "data", out_dir=artifacts / name, config=config, limit=8)


def test_report_runs_every_section_on_real_models(tmp_path, model_repo):
    _tiny_rankers(tmp_path / "artifacts")
    settings = Settings(model_repo=model_repo, data_dir=ROOT / "data", state_dir=tmp_path / "state",
                        inference="embedded", kafka_bootstrap=None, redis_url=None)
    config = ReportConfig(out_dir=tmp_path / "report", command="pytest", student=tmp_path / "no-student",
                          artifacts=tmp_path / "artifacts", catalogue_limit=300, query_limit=40,
                          keyphrase_items=4, ranx_check=False)
    result = build_report(settings, config)

    text = result.path.read_text()
    for heading in ("## 1. Headline", "## 2. Ranker per task", "## 3. Retrieval", "## 4. Student–ranker",
                    "## 5. Student ablations", "## 6. Keyphrase", "## 7. Relevance–engagement", "## 8. Plots",
                    "## 9. What this report"):
        assert heading in text
    assert "SMOKE RUN" in text and "not trained" in text
    assert "**test** split" in text and "It is held out" in text  # the header says what the split was used for
    assert {p.name for p in config.out_dir.glob("*.png")} == {"recall_by_dim.png", "tradeoff.png",
                                                              "keyphrases_per_item.png"}
    ranker = result.headline[-1]
    assert 0.0 < ranker.ndcg10 <= 1.0 and 0.0 < ranker.rmse < 2.0
    recall = result.figures["recall"]["zero-shot"]
    assert all(0.0 <= recall[d] <= 1.0 for d in config.dims)
    assert recall[384] >= recall[64] - 0.1  # cuts lose little or something is off (e.g. no re-normalisation)
    # the served funnel: with 300 products an 8 × 100 shortlist holds them all, so it is 384-d search (fp16)
    served = result.figures["recall_funnel"]["zero-shot"]
    assert abs(served - recall[384]) <= 0.02 and "As served" in text
    curve = result.figures["tradeoff"]
    assert list(curve["w"]) == list(np.linspace(0.0, 1.0, config.sweep_points))
    assert result.figures["keyphrases"]["items"] == 4
    assert all(-1.0 <= r <= 1.0 for r in result.figures["ctr_head"].values())
    # the shipped ranker's card has an engagement fit: the item popularity makes the CTR estimate track clicks
    ctr_r = result.figures["ctr_head"]
    assert ctr_r["CTR head + popularity vs simulated CTR"] > ctr_r["CTR head vs simulated CTR"]
    assert list(result.figures["tradeoff_text_only"]["w"]) == list(curve["w"])
    rankers = {f.name: f for f in result.figures["rankers"]}
    assert set(rankers) == {"mt-multihead", "mt-prefix", "st-query_query", "ensemble of mt-multihead, mt-prefix"}
    assert set(rankers["mt-prefix"].by_task) == {"query_item", "item_item", "query_query"}
    assert rankers["ensemble of mt-multihead, mt-prefix"].ndcg10 is not None
    assert "Multi-task against the single-task baseline" in text and "| query_query |" in text
