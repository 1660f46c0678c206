"""Report sections 3 (catalogue retrieval by Matryoshka dimension), 4 (student–ranker agreement), 5 (student ablations)."""

from __future__ import annotations

from training.evaluate import inventory
from training.evaluate.ablation import pair_figures, student_figures
from training.evaluate.report.context import Context, ScoredSplit
from training.evaluate.report.markdown import md_table, num, pct
from training.evaluate.retrieval import catalogue_recall, exact_items_by_query, funnel_recall, ranx_recall

# data/README.md: zero-shot recall@100 of exact items over the catalogue on the test split
REFERENCE_ZERO_SHOT_RECALL = {384: 0.689, 64: 0.511}


# --- 3 -------------------------------------------------------------------------------------------

def section_retrieval(ctx: Context) -> tuple[str, dict[str, dict[int, float]]]:
    """The section's markdown and recall@k by encoder and cut (section 8 plots it)."""
    k, dims = ctx.config.recall_k, ctx.config.dims
    relevant_by_query = exact_items_by_query(ctx.frame)
    queries = list(relevant_by_query)
    relevant = [relevant_by_query[q] for q in queries]
    systems = [("zero-shot", ctx.zero_shot)] + ([("student", ctx.student)] if ctx.student is not None else [])
    recall: dict[str, dict[int, float]] = {}
    checks = []
    for name, emb in systems:
        recall[name] = {}
        q_rows = [emb.queries.index(q) for q in queries]
        for d in dims:
            per_query, retrieved = catalogue_recall(emb.query_matrix(d)[q_rows], emb.item_matrix(d), emb.item_ids,
                                                    relevant, k=k)
            recall[name][d] = float(per_query.mean())
            if ctx.config.ranx_check and d in (dims[0], dims[-1]):
                checks.append((name, d, recall[name][d], ranx_recall(queries, retrieved, relevant, k=k)))
    ctx.figures["recall"] = recall
    rows = []
    for name in ("zero-shot", "student"):
        if name in recall:
            r = recall[name]
            rows.append([name] + [num(r[d]) for d in dims] + [pct(r[dims[-1]] / r[dims[0]])])
        else:
            rows.append([name] + [ctx.student_note] * len(dims) + ["—"])
    table = md_table(["model"] + [f"{d}-d" for d in dims] + [f"{dims[-1]}-d as % of {dims[0]}-d"], rows)
    zs = recall["zero-shot"]
    ref = "; ".join(f"{d}-d {zs[d]:.3f} vs {v:.3f} ({zs[d] - v:+.3f})" for d, v in REFERENCE_ZERO_SHOT_RECALL.items()
                    if d in zs)
    check = "; ".join(f"{n} {d}-d numpy {a:.4f} / ranx {b:.4f}" for n, d, a, b in checks) or "not run"
    n_exact = sum(len(r) for r in relevant)
    funnel_line = ""
    if ctx.settings.funnel_dim:
        short, factor = ctx.settings.funnel_dim, ctx.settings.index_shortlist_factor
        precision = ctx.settings.index_full_precision
        served = {name: funnel_recall(emb, ctx.frame, shortlist_dim=short, shortlist_factor=factor,
                                      full_precision=precision, k=k)
                  for name, emb in systems}
        funnel_line = (f"- As served (`service/index/funnel.py`: the ANN index holds the {short}-d cut and its "
                       f"{factor} × k shortlist is rescored at full width, kept in {precision}): "
                       + "; ".join(f"{name} {v:.3f} ({pct(v / recall[name][dims[0]])} of {dims[0]}-d)"
                                   for name, v in served.items()) + ".\n")
        ctx.figures["recall_funnel"] = served
    markdown = (f"## 3. Retrieval over the whole catalogue\n\nFor each of the {len(queries):,} distinct "
                f"{ctx.config.split} queries with at least one exact item (label 2: human mean ≥ 2.5; "
                f"{n_exact:,} exact judgements), the query searches all {len(ctx.catalogue_ids):,} products "
                f"(FAISS IndexFlatIP over unit vectors: exact cosine search) and recall@{k} is the share of its "
                f"exact items in the top {k}, averaged over queries.\n\n" + table +
                f"\n\n- Zero-shot against the figures in data/README.md: {ref}.\n"
                + funnel_line +
                f"- Recall computed with numpy, cross-checked with ranx: {check}.\n\n"
                "![recall vs dimension](recall_by_dim.png)\n")
    return markdown, recall


# --- 4 -------------------------------------------------------------------------------------------

def section_agreement(ctx: Context, scored: ScoredSplit) -> tuple[str, dict]:
    """The section's markdown and, per encoder, dim → NDCG@10 and Pearson r (section 5's zero-shot row)."""
    frame, dims = scored.frame, (ctx.config.dims[0], ctx.config.dims[-1])
    expected = scored.heads.relevance.expected
    by_encoder: dict[str, dict] = {}
    rows = []
    for name, emb in (("zero-shot", ctx.zero_shot), ("student", ctx.student)):
        if emb is None:
            rows.append([name] + [ctx.student_note] * len(dims))
            continue
        by_encoder[name] = pair_figures(emb, frame, expected, dims)
        rows.append([name] + [num(by_encoder[name][d]["r_ranker"]) for d in dims])
    ctx.figures["agreement"] = {(name, d): by_dim[d]["r_ranker"] for name, by_dim in by_encoder.items()
                                for d in dims}
    table = md_table(["encoder", f"Pearson r at {dims[0]}-d", f"at {dims[-1]}-d"], rows)
    markdown = (f"## 4. Student–ranker agreement\n\nPearson r between the encoder's cosine and the served ranker's "
                f"expected relevance E[y] over the {len(frame):,} {ctx.config.split} query_item pairs (the student "
                "was distilled from this ranker's scores on train pairs).\n\n" + table + "\n")
    return markdown, by_encoder


# --- 5 -------------------------------------------------------------------------------------------

def section_ablations(ctx: Context, scored: ScoredSplit, agreement: dict) -> str:
    """``agreement``: section 4's figures per encoder (the zero-shot row)."""
    cfg, dims = ctx.config, (ctx.config.dims[0], ctx.config.dims[-1])
    students = inventory.scan(cfg.artifacts).students
    if not students:
        return f"## 5. Student ablations\n\nNo student under `{cfg.artifacts}/` (`make students` trains them).\n"
    known = {cfg.student.name: ctx.student} if ctx.student is not None and cfg.student else {}
    figures = student_figures(students, artifacts=cfg.artifacts, frame=scored.frame,
                              ranker_expected=scored.heads.relevance.expected, dims=dims, known=known)
    ctx.figures["ablations"] = figures

    def row(name: str, signals: str, kd: str, steps, by_dim) -> list[str]:
        return [name, signals, kd, str(steps if steps is not None else "—")] + [
            num(by_dim[d][key]) for d in dims for key in ("r_ranker", "r_human", "ndcg10")]

    rows = [row(ctx.zero_shot.name, "—", "—", 0, agreement["zero-shot"])]
    rows += [row(f"`{f.name}`", f.signals, f.kd_loss or "—", f.steps, f.by_dim) for f in figures]
    header = ["student", "trained on", "KD loss", "steps"] + [
        f"{label} {d}-d" for d in dims for label in ("r vs ranker", "r vs human", "NDCG@10")]
    return (f"## 5. Student ablations\n\nThe ablation students are budgeted trials of one preset (`make students`: "
            "`shoprank train student --preset trial`, rows capped per dataset, one capped epoch), so "
            "they differ only in the ablated choice; any other student under `artifacts/` (longer runs) is listed "
            "with its own step count. KD-loss ablation: the rows trained on clicks + labels + KD with MSE, CoSENT "
            "and Pearson distillation (eBay's Table 1b); label ablation: click only / + labels / + KD (its Table 2). "
            f"Over the {len(ctx.frame):,} {cfg.split} query_item pairs: Pearson r of the cosine with the served "
            "ranker's E[y] (what distillation transfers) and with the human mean, and re-ranking NDCG@10. "
            "Catalogue recall is in section 3 for the main student only (encoding every product per student "
            "costs minutes each on 2 cores); threshold F1 is left out (a student has no calibrated threshold, "
            "and fitting one here would tune on the evaluated split).\n\n" + md_table(header, rows) + "\n")
