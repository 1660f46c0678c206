"""Report sections 6 (keyphrase recommendation as served) and 7 (the relevance–engagement trade-off)."""

from __future__ import annotations

import numpy as np

from service.ranking.engagement_prior import engagement_priors, with_priors
from service.ranking.value_model import value_scores
from training.engagement import ClickModel, split_engagement
from training.evaluate import plots
from training.evaluate.keyphrase_eval import evaluate_keyphrases, keyphrase_runtime, sample_items
from training.evaluate.metrics import pearson_r
from training.evaluate.report.context import Context, ScoredSplit
from training.evaluate.report.markdown import md_table, num, pct
from training.evaluate.tradeoff import engagement_share, reference_point, sweep

# --- 6 -------------------------------------------------------------------------------------------

def section_keyphrases(ctx: Context) -> str:
    cfg = ctx.config
    items = sample_items(ctx.frame["item_id"], n=cfg.keyphrase_items, seed=cfg.seed)
    title_of = dict(zip(ctx.frame["item_id"], ctx.frame["title"]))
    runtime = keyphrase_runtime(ctx.settings, ctx.backend, ctx.encoder, ctx.scorer, ctx.keyphrases)
    result = evaluate_keyphrases(runtime, item_ids=items, titles=[title_of[i] for i in items],
                                 keyphrases=ctx.keyphrases, k=cfg.keyphrase_k)
    s = result.summary()
    ctx.figures["keyphrases"] = s
    plots.count_histogram({"ANN (served encoder) → ranker floor": [len(p) for p in result.passed],
                           "BM25 → ranker floor": [len(p) for p in result.bm25_passed]},
                          cfg.out_dir / "keyphrases_per_item.png", k=cfg.keyphrase_k)
    k = cfg.keyphrase_k
    table = md_table(["figure", "value"], [
        ["items (seeded sample of the split's items)", f"{s['items']:,}"],
        [f"ANN candidates (top {k} per item)", f"{s['candidates']:,}"],
        ["ranker floor P(y ≥ partial)", f"{result.floor:.2f}"],
        ["pass rate of the ANN candidates", pct(s["pass_rate"])],
        ["relevant keyphrases per item: median / mean", f"{s['passed_median']:.1f} / {s['passed_mean']:.2f}"],
        ["items with no keyphrase passing", pct(s["items_with_none"])],
        [f"BM25 keyphrases returned per item (score > 0, top {k}): median", f"{s['bm25_returned_median']:.1f}"],
        ["pass rate of the BM25 keyphrases (same floor)", pct(s["bm25_pass_rate"])],
        ["BM25 keyphrases passing per item: median", f"{s['bm25_passed_median']:.1f}"],
        ["**passed ANN keyphrases BM25 did not return**, per item: median / mean",
         f"**{s['additional_median']:.1f}** / {s['additional_mean']:.2f}"],
        ["share of passed ANN keyphrases that BM25 did not return", pct(s["additional_share"])],
        ["distinct passing keyphrases per item from both sources: median", f"{s['union_passed_median']:.1f}"],
    ])
    examples = []
    for item_id, title, passed, bm25 in list(zip(result.item_ids, result.titles, result.passed, result.bm25))[:3]:
        bm25_set = {b.lower() for b in bm25}
        shown = ", ".join(f"{p}{'' if p.lower() in bm25_set else ' *'}" for p in passed[:8]) or "(none)"
        examples.append(f"- `{item_id}` {title}: {shown}")
    return (f"## 6. Keyphrase recommendation, production style\n\n{s['items']} items drawn (seed {cfg.seed}) from the "
            f"{ctx.config.split} split's items. For each, `service.pipelines.recommend_keyphrases` runs as served: the "
            f"item title through {ctx.encoder.model_version} ({ctx.settings.embedding_dim}-d), the top {k} of the "
            f"keyphrase index over all {len(ctx.keyphrases):,} distinct search terms (the service's corpus), then "
            f"the {ctx.scorer.model_version} relevance filter at the floor in its model card. (The service fetches "
            f"k × {ctx.settings.keyphrase_candidates_factor} candidates to fill k; here the factor is 1 so the pass "
            "rate is over exactly the top k.) The other recall source is BM25 (bm25s, English stopwords) over the "
            "same corpus with the title as the query; a ranker-passed ANN keyphrase is *additional* value only when "
            "BM25's top k did not also hold it.\n\n" + table +
            "\n\nFirst sampled items (passed keyphrases, best first; * = not returned by BM25):\n\n" +
            "\n".join(examples) + "\n\n![keyphrases per item](keyphrases_per_item.png)\n")


# --- 7 -------------------------------------------------------------------------------------------

def section_tradeoff(ctx: Context, scored: ScoredSplit) -> str:
    cfg, frame, heads = ctx.config, scored.frame.copy(), scored.heads
    # one simulation over every split, so each product has one popularity (training/engagement.py)
    engagement = split_engagement(ctx.pairs, frame)
    frame["sim_ctr"] = engagement["ctr"].to_numpy()
    frame["sim_conv"] = (engagement["ctr"] * engagement["cvr"]).to_numpy()  # conversions per impression
    popularity = engagement["popularity"].to_numpy()
    prior = engagement_priors(ctx.scorer.card)
    has_prior = bool(prior)
    ctr, cvr = with_priors(ctx.scorer.card, heads.ctr, heads.cvr, popularity)
    points = tuple(np.linspace(0.0, 1.0, cfg.sweep_points))
    text_only = sweep(frame, expected=heads.relevance.expected, ctr=heads.ctr, cvr=heads.cvr, points=points)
    args = {"expected": heads.relevance.expected, "ctr": ctr, "cvr": cvr, "points": points}
    curve = sweep(frame, engagement_column="sim_ctr", **args)
    conv = sweep(frame, engagement_column="sim_conv", **args)
    curve["conv_weighted"] = conv["engagement_weighted"].to_numpy()
    ctx.figures["tradeoff"] = curve
    ctx.figures["tradeoff_text_only"] = text_only
    heads_r = {"CTR head vs simulated CTR": pearson_r(heads.ctr, frame["sim_ctr"]),
               "CTR head vs the ranker's E[y]": pearson_r(heads.ctr, heads.relevance.expected),
               "human relevance vs simulated CTR": pearson_r(frame["relevance"], frame["sim_ctr"])}
    if has_prior:
        heads_r["CTR head + popularity vs simulated CTR"] = pearson_r(ctr, frame["sim_ctr"])
    ctx.figures["ctr_head"] = heads_r
    marks = {}
    for name, weights in ctx.settings.profiles.items():
        w = engagement_share(weights)
        frame[f"profile_{name}"] = value_scores(expected_relevance=heads.relevance.expected, ctr=ctr, cvr=cvr,
                                                weights=weights)
        marks[f"profile '{name}' (w = {w:.2f})"] = reference_point(frame, f"profile_{name}") | {"w": w}
    marks["random order"] = reference_point(frame, "random") | {"w": float("nan")}
    marks["oracle: simulated CTR itself"] = reference_point(frame, "sim_ctr") | {"w": float("nan")}
    decay = ClickModel().position_decay
    plots.tradeoff_curve(curve, cfg.out_dir / "tradeoff.png", engagement_column="engagement_weighted",
                         engagement_label=f"simulated CTR of the top 10, examination-weighted (1/(1+r)^{decay})",
                         marks={k: v for k, v in marks.items() if not k.startswith("profile 'relevance'")},
                         label="heads + item popularity, w = 0 … 1" if has_prior else "value model, w = 0 … 1",
                         baseline=text_only if has_prior else None, baseline_label="text-only heads, w = 0 … 1")
    rows = [[num(r.w, 1), num(t.ndcg10, 4), num(t.engagement_weighted, 4), num(r.ndcg10, 4), num(r.engagement_mean, 4),
             num(r.engagement_weighted, 4), num(r.conv_weighted, 4)]
            for r, t in zip(curve.itertuples(), text_only.itertuples())]
    table = md_table(["engagement weight w", "text-only heads: NDCG@10", "text-only: sim. CTR, weighted",
                    "NDCG@10", "sim. CTR, top-10 mean", "sim. CTR, top-10 weighted",
                    "sim. conversions / impression, weighted"], rows)
    ref_rows = [[name, num(p["ndcg10"], 4), num(p["engagement_mean"], 4), num(p["engagement_weighted"], 4)]
                for name, p in marks.items()]
    ref = md_table(["ordering", "NDCG@10", "sim. CTR, top-10 mean", "sim. CTR, top-10 weighted"], ref_rows)
    n = frame.groupby("query").size()
    n = n[n >= 2]  # the queries NDCG@10 and the engagement figures average over
    inputs = ("the served ranker's heads with the item's popularity feature: CTR and CVR recalibrated by "
              "`service/ranking/engagement_prior.py` with the coefficients `shoprank calibrate` fitted on validation "
              f"(CTR: {prior['ctr'].head:.2f}·logit(head) + {prior['ctr'].popularity:.2f}·popularity "
              f"{prior['ctr'].bias:+.2f}). The popularity fed here is the click model's own per-product logit, "
              "i.e. an exact popularity feature, the best case for what a caller's `features.popularity` (e.g. an "
              "item's historical CTR) provides; the text-only columns are the same sweep on the heads alone"
              if has_prior else "the served ranker's heads (its card has no engagement fit, so no popularity)")
    return (f"## 7. Relevance–engagement trade-off\n\nThe {len(frame):,} {ctx.config.split} query_item pairs are "
            "ordered per query by the unified value model (`service/ranking/value_model.py`) with weights "
            f"relevance 1 − w, CTR w/2, CVR w/2, on {inputs}. NDCG@10 is against the human relevance. Engagement "
            "is **SIMULATED**: the click model of `training/engagement.py` run once over every labelled pair "
            "(seed 2016; debiased CTR, the ground truth of the engagement heads), so a product has one popularity "
            f"across splits. {(n <= 10).mean():.0%} of the queries have at most 10 candidates, so the top-10 plain "
            "mean moves little with the order; the weighted columns weigh rank r by the click model's examination "
            f"probability 1/(1+r)^{decay}, and are what the plot shows.\n\n" + table +
            "\n\nReference orderings (named profiles from `service/settings.py`, placed on the w axis by "
            "(w_ctr + w_cvr) / Σw):\n\n" + ref + "\n\nWhat the CTR estimate carries (Pearson r over the same "
            "pairs): " + "; ".join(f"{k} {v:.3f}" for k, v in heads_r.items()) + ". The text-only CTR head mostly "
            "repeats E[y]: the simulated clicks also depend on an item popularity that a cross-encoder reading "
            "the query and the title cannot see, which is what the popularity feature adds.\n\n"
            "![trade-off](tradeoff.png)\n")
