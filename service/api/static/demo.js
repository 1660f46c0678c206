// ShopRank demo page: search (/v1/retrieve → /v1/rank), live weights, explanations, item view, write panel.
// No dependencies and no build step; the server fills window.SHOPRANK_DEMO (writes allowed, defaults).
"use strict";
(function () {
  const config = window.SHOPRANK_DEMO;
  const $ = (id) => document.getElementById(id);
  const state = { query: "", items: [], mode: "", seq: 0, timer: null };

  async function call(method, path, body) {
    const response = await fetch(path, {
      method, headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error ? `${data.error.code}: ${data.error.message}` : response.statusText);
    return data;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) node.append(child);
    return node;
  }

  function bar(name, value, cls) {
    const fill = el("span");
    fill.style.width = `${Math.round(Math.max(0, Math.min(1, value)) * 100)}%`;
    return [el("span", {}, name), el("div", { class: `bar ${cls}` }, fill), el("span", {}, value.toFixed(3))];
  }

  function weights() {
    const out = {};
    for (const input of document.querySelectorAll("input[data-weight]")) {
      out[input.dataset.weight] = Number(input.value);
      $(`o-${input.dataset.weight}`).textContent = Number(input.value).toFixed(2);
    }
    return out;
  }

  function setStatus(text, cls) { $("status").textContent = text; $("status").className = `meta ${cls || ""}`; }

  async function search(event) {
    if (event) event.preventDefault();
    state.query = $("query").value.trim();
    if (!state.query) return;
    setStatus("searching…");
    try {
      const found = await call("POST", "/v1/retrieve", { query: state.query, k: 20, mode: $("mode").value });
      state.items = found.items;
      state.mode = found.mode;
      $("model").textContent = found.model_version;
      await rank();
    } catch (error) { setStatus(error.message, "error"); }
  }

  async function rank() {
    const results = $("results");
    if (!state.items.length) { results.replaceChildren(); setStatus("no items found", "error"); return; }
    const w = weights();
    if (w.relevance + w.ctr + w.cvr <= 0) { setStatus("at least one weight must be positive", "error"); return; }
    const seq = ++state.seq;
    const body = { query: state.query, weights: w,
                   items: state.items.map((i) => ({ id: i.id, title: i.title, category: i.category })) };
    const ranked = await call("POST", "/v1/rank", body);
    if (seq !== state.seq) return;  // a newer slider position answered first
    const byId = Object.fromEntries(state.items.map((i) => [i.id, i]));
    results.replaceChildren(...ranked.items.map((r) => {
      const item = byId[r.id];
      const phase = r.phase === 2 ? "phase 2: cross-encoder" : "phase 1: first phase only";
      const li = el("li", { "data-id": r.id, "data-score": r.score, "data-ctr": r.engagement.ctr,
                            "data-cvr": r.engagement.cvr, "data-expected": r.relevance.expected,
                            "data-phase": r.phase, class: r.filtered ? "filtered" : "" },
        el("div", {}, el("span", { class: "title" }, item.title),
           el("span", { class: `phase p${r.phase}`, title: "which ranking phase scored it" }, phase)),
        el("div", { class: "meta" }, `id ${r.id} · score ${r.score.toFixed(3)} · ${r.relevance.label} · ${state.mode} retrieval score ${item.score.toFixed(3)}`),
        el("div", { class: "bars" }, ...bar("P(≥ partial)", r.relevance.p_partial_or_better, "partial"),
           ...bar("P(exact)", r.relevance.p_exact, "exact"), ...bar("CTR", r.engagement.ctr, "ctr"),
           ...bar("CVR", r.engagement.cvr, "cvr")));
      li.addEventListener("click", () => showItem(r.id));
      return li;
    }));
    results.dataset.weights = JSON.stringify(w);
    setStatus(`${ranked.items.length} items · ${ranked.model_version}`, "ok");
  }

  function onSlider() {
    weights();
    clearTimeout(state.timer);
    state.timer = setTimeout(() => rank().catch((error) => setStatus(error.message, "error")), 120);
  }

  async function showItem(id) {
    const view = $("item-view");
    view.replaceChildren(el("h2", {}, "Item"), el("p", { class: "meta" }, "loading…"));
    try {
      const doc = await call("GET", `/v1/items/${encodeURIComponent(id)}`);
      const recs = await call("POST", "/v1/keyphrases/recommend", { item_id: id, k: 10 });
      const floor = (phase) => (phase === 1 && recs.first_phase_relevance_floor !== null
        ? recs.first_phase_relevance_floor : recs.relevance_floor);
      const rows = recs.keyphrases.map((k) => el("tr", {}, el("td", {}, k.keyphrase),
        el("td", {}, k.relevance.p_partial_or_better.toFixed(2)), el("td", {}, `≥ ${floor(k.phase).toFixed(2)}`),
        el("td", {}, `phase ${k.phase}`)));
      const floors = `relevance floor P(≥ partial) ≥ ${recs.relevance_floor.toFixed(2)} (cross-encoder)` +
        (recs.first_phase_relevance_floor !== null ? `, ≥ ${recs.first_phase_relevance_floor.toFixed(2)} (first phase)` : "");
      view.replaceChildren(el("h2", {}, doc.title),
        el("p", { class: "meta" }, `id ${doc.item_id} · version ${doc.version} · searchable version ${doc.searchable_version}`),
        el("p", { class: "meta", id: "floor" }, `Recommended keyphrases (${recs.source}); ${floors}; candidates below it were filtered.`),
        el("table", { class: "kp", id: "keyphrases" },
           el("tr", {}, el("th", {}, "keyphrase"), el("th", {}, "P(≥ partial)"), el("th", {}, "floor"), el("th", {}, "phase")), ...rows));
      if (config.writes) {
        $("write-id").value = doc.item_id; $("write-title").value = doc.title;
        $("write-category").value = doc.category; $("write-version").value = doc.version + 1;
      }
    } catch (error) { view.replaceChildren(el("h2", {}, "Item"), el("p", { class: "error" }, error.message)); }
  }

  async function write(event) {
    event.preventDefault();
    const id = $("write-id").value.trim(), title = $("write-title").value.trim();
    const version = Number($("write-version").value), status = $("write-status");
    status.className = "meta"; status.textContent = "writing…";
    try {
      const receipt = await call("PUT", `/v1/items/${encodeURIComponent(id)}`,
        { version, title, category: $("write-category").value.trim() });
      let doc = null;
      for (let i = 0; i < 50; i++) {  // embedded writes are searchable at once; with Kafka, wait for the replica
        doc = await call("GET", `/v1/items/${encodeURIComponent(id)}`);
        if (doc.searchable_version !== null && doc.searchable_version >= version) break;
        await new Promise((done) => setTimeout(done, 200));
      }
      const found = await call("POST", "/v1/retrieve", { query: title, k: 20, mode: $("mode").value });
      const rank = found.items.findIndex((item) => item.id === id);
      status.className = rank >= 0 ? "meta ok" : "meta error";
      status.textContent = `${receipt.status} v${receipt.version}; searchable version ${doc.searchable_version}; ` +
        (rank >= 0 ? `searching its title finds it at rank ${rank + 1} (${found.mode})` : "not in the top 20 for its title yet");
      await showItem(id);  // the item view shows the written version
    } catch (error) { status.className = "meta error"; status.textContent = error.message; }
  }

  for (const [name, value] of Object.entries(config.weights)) $(`w-${name}`).value = value;
  weights();
  $("mode").value = config.mode;
  $("write-panel").hidden = !config.writes;
  $("search-form").addEventListener("submit", search);
  for (const input of document.querySelectorAll("input[data-weight]")) input.addEventListener("input", onSlider);
  if (config.writes) $("write-form").addEventListener("submit", write);
  call("GET", "/readyz").then((ready) => { $("model").textContent = ready.model_version; })
    .catch((error) => setStatus(error.message, "error"));
})();
