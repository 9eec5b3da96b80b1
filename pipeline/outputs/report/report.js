"use strict";
// exhibit case report. Every string from the evidence reaches the page through
// textContent or an attribute set with setAttribute on an element we create, never as
// markup; the data block is JSON that the page parses, never runs.
(function () {
  const D = JSON.parse(document.getElementById("case-data").textContent);
  const C = {};
  D.columns.forEach((name, i) => { C[name] = i; });
  const S = D.strings;
  const ROWS = D.files;
  const BY_ID = new Map();
  ROWS.forEach((row, i) => BY_ID.set(row[C.id], i));
  const SVG_NS = "http://www.w3.org/2000/svg";
  const nf = new Intl.NumberFormat("en");

  // -- small DOM helpers -------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = String(value);
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const str = (i) => (i === null || i === undefined ? null : S[i]);
  const num = (n) => (n === null || n === undefined ? "" : nf.format(n));
  const show = (v) => (v === null || v === undefined || v === "" ? "—" : String(v));
  function kv(pairs) {
    return el("table", { class: "kv" }, pairs.filter((p) => p).map(([k, v, cls]) =>
      el("tr", null, el("th", { text: k }),
        el("td", { class: cls || null }, v instanceof Node ? v : show(v)))));
  }
  function section(id) { return document.getElementById(id); }

  // -- tabs --------------------------------------------------------------------------
  const tabs = [["overview", "Overview"], ["matches", "Known matches"],
    ["files", "All files"], ["pictures", "Pictures"]];
  const nav = document.querySelector("header nav");
  for (const [id, label] of tabs) {
    nav.append(el("button", { "data-tab": id, text: label, onclick: () => showTab(id) }));
  }
  function showTab(id) {
    for (const [tab] of tabs) {
      section(tab).classList.toggle("active", tab === id);
      nav.querySelector(`[data-tab="${tab}"]`).classList.toggle("active", tab === id);
    }
    if (id === "pictures") renderPictures();
  }

  // -- overview ----------------------------------------------------------------------
  function renderOverview() {
    const root = section("overview");
    const k = D.counts;
    const ledger = D.ledger;
    const verdict = ledger.ok
      ? el("span", { class: "ok", text: `verified: ${num(ledger.entries)} entries, chain intact` })
      : el("span", { class: "bad", text: ledger.present
        ? `FAILED at entry ${show(ledger.first_bad_seq)}: ${show(ledger.reason)}`
        : "no ledger in this case" });
    root.append(el("h2", { text: "Case" }), el("div", { class: "panel" }, kv([
      ["Case directory", D.case.directory, "mono"],
      ["Case id", D.case.case_id || D.case.id, "mono"],
      ["Created by", D.case.created_by],
      ["Examiners (ledger)", [...new Set(D.runs.map((r) => r.actor && (r.actor.name ||
        r.actor.examiner || JSON.stringify(r.actor))).filter(Boolean))].join(", ")],
      ["Custody ledger", verdict],
      ledger.checks ? ["Checks (as exhibit ledger verify)", el("table", null, ledger.checks.map(
        ([check, result, detail]) => el("tr", null, el("td", { text: check }),
          el("td", { class: result === "FAILED" ? "bad" : null, text: result }),
          el("td", { class: "muted", text: detail }))))] : null,
      ["Report generated", `${D.generated} by ${D.tool.name} ${D.tool.version}`],
    ])));
    const cards = [["entries", k.entries], ["files", k.files], ["directories", k.directories],
      ["deleted entries", k.deleted], ["bytes in files", k.bytes], ["analysed", k.analysed],
      ["images", k.images], ["type mismatches", k.mismatches], ["errors", k.errors],
      ["skipped (size limits)", k.skipped], ["matched files", k.matched_files],
      ["known-good files", k.known_good_files], ["in shadow copies", k.in_snapshots],
      ["only in shadow copies", k.only_in_snapshots]];
    root.append(el("h2", { text: "Counts" }), el("div", { class: "cards" }, cards.map(([l, n]) =>
      el("div", { class: "stat", "data-count": l }, el("div", { class: "n", text: num(n) }),
        el("div", { class: "l", text: l })))));
    const cat = Object.entries(k.matches_by_category);
    root.append(el("div", { class: "panel" }, el("h3", { text: "Matched files by category" }),
      cat.length ? el("table", null, el("tr", null, el("th", { text: "category" }),
        el("th", { class: "num", text: "files" })), cat.map(([c, n]) => el("tr", null,
        el("td", { text: c }), el("td", { class: "num", text: num(n) }))))
        : el("p", { class: "muted", text: "No known-hash matches." }),
      el("h3", { text: "Entries by type" }),
      el("table", null, Object.entries(D.by_type).map(([t, n]) => el("tr", null,
        el("td", { text: t }), el("td", { class: "num", text: num(n) }))))));
    root.append(el("h2", { text: "Evidence" }));
    for (const ev of D.evidence) {
      const comparisons = (ev.verification || []).map((c) => el("div", null,
        el("span", { class: c.status === "match" ? "ok" : "bad", text: c.status }),
        ` ${show(c.algorithm)} (${show(c.source)}): stated ${show(c.expected || c.stated)}`));
      root.append(el("div", { class: "panel" }, kv([
        ["Evidence id", ev.id, "mono"],
        ["SHA-256", ev.sha256 || "not finished (interrupted run)", "mono"], ["MD5", ev.md5, "mono"],
        ["SHA-1", ev.sha1, "mono"], ["Format", ev.format], ["Size", `${num(ev.size)} bytes`],
        ["Container files", (ev.paths || []).join("\n"), "mono"],
        ["Acquisition hashes", ev.verified && !comparisons.length
          ? el("span", { class: "warn", text: "computed; no stated or stored hashes to compare" })
          : ev.verified
          ? el("span", { class: "ok", text: `verified (${comparisons.length} comparison(s) match)` })
          : el("span", { class: "bad", text: comparisons.length
            ? "MISMATCH (analysed anyway, by the examiner's choice)"
            : "not verified" })],
        comparisons.length ? ["Comparisons", el("div", null, comparisons)] : null,
        ["Registered", ev.registered_at], ["Partition table", ev.partition_table],
      ]), el("h3", { text: "Volumes" }), el("table", null,
        el("tr", null, ["#", "offset", "length", "description", "filesystem", "status",
          "entries"].map((h) => el("th", { text: h }))),
        ev.volumes.map((v) => el("tr", null, el("td", { text: v.index }),
          el("td", { class: "num", text: num(v.offset) }),
          el("td", { class: "num", text: num(v.length) }), el("td", { text: v.description }),
          el("td", { text: show(v.fs_type) + (v.detail && v.detail.volume_filesystems
            ? ` (volume holds ${v.detail.volume_filesystems.join(" + ")})` : "") }),
          el("td", { text: v.status }),
          el("td", { class: "num", text: num(v.detail && v.detail.entries) }))))));
    }
    root.append(el("h2", { text: "Runs and versions" }));
    root.append(el("div", { class: "panel" }, el("table", null,
      el("tr", null, ["started", "ended", "outcome", "elapsed", "examiner", "analyzers",
        "exhibit"].map((h) => el("th", { text: h }))),
      D.runs.map((r) => el("tr", null, el("td", { text: show(r.started) }),
        el("td", { text: show(r.ended) }), el("td", { text: show(r.outcome || r.error) }),
        el("td", { text: r.elapsed_seconds != null ? `${r.elapsed_seconds} s` : "—" }),
        el("td", { text: show(r.actor && (r.actor.name || r.actor.examiner)) }),
        el("td", { text: show((r.analyzers || []).join(", ")) }),
        el("td", { text: show(r.tool) }))))));
    const versions = Object.entries(D.analyzers.analyzers).map(([n, v]) => [`analyzer ${n}`,
      v.join(", ")]).concat(Object.entries(D.analyzers.worker_libraries).map(([n, v]) =>
      [n, v.join(", ")]));
    root.append(el("div", { class: "panel" }, el("h3", { text: "Analyzers and the workers' libraries" }),
      kv(versions)));
    if (D.hashsets.length) {
      root.append(el("h2", { text: "Hash sets" }), el("div", { class: "panel" }, el("table", null,
        el("tr", null, ["name", "kind", "format", "version", "entries", "sha256", "loaded"]
          .map((h) => el("th", { text: h }))),
        D.hashsets.map((h) => el("tr", null, el("td", { text: h.name }),
          el("td", { text: show(h.kind) }), el("td", { text: h.format }),
          el("td", { text: show(h.version) }),
          el("td", { text: h.counts ? Object.entries(h.counts).map(([a, n]) =>
            `${a}: ${typeof n === "object" ? JSON.stringify(n) : num(n)}`).join(", ") : "—" }),
          el("td", { class: "mono", text: h.sha256 }), el("td", { text: h.loaded_at }))))));
    }
  }

  // -- thumbnails, veiled by default -------------------------------------------------
  const veils = new Set();
  let revealAll = false;
  function thumbFrame(fid) {
    const digest = D.thumbs[fid];
    const frame = el("div", { class: "frame veiled", "data-file-id": fid });
    if (digest && D.thumbdata[digest]) {
      frame.append(el("img", { class: "thumb", alt: "thumbnail (veiled)",
        src: `data:image/jpeg;base64,${D.thumbdata[digest]}` }));
    } else {
      frame.append(el("div", { class: "none", text: "no thumbnail" }));
    }
    frame.classList.toggle("veiled", !revealAll);
    veils.add(frame);
    return frame;
  }
  function revealButton(frame) {
    const button = el("button", { class: "reveal", type: "button" });
    const sync = () => { button.textContent = frame.classList.contains("veiled") ? "Reveal" : "Veil"; };
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      frame.classList.toggle("veiled");
      sync();
    });
    sync();
    return button;
  }
  function setRevealAll(on) {
    revealAll = on;
    for (const frame of veils) {
      if (!frame.isConnected) { veils.delete(frame); continue; }
      frame.classList.toggle("veiled", !on);
      const button = frame.parentNode && frame.parentNode.querySelector("button.reveal");
      if (button) button.textContent = on ? "Veil" : "Reveal";
    }
    document.getElementById("reveal-all").textContent = on ? "Veil all images" : "Reveal all images";
  }

  // -- known matches -----------------------------------------------------------------
  const MATCH_SKIP = new Set(["hashset_id", "known_id"]);
  function matchLines(matches) {
    return matches.map((m) => {
      const main = `${show(m.hashset)} · ${show(m.algorithm)} · distance ${show(m.distance)}`;
      const extra = Object.entries(m).filter(([key, v]) => !["hashset", "algorithm", "distance",
        "known_value"].includes(key) && !MATCH_SKIP.has(key) && v !== null && v !== "")
        .map(([key, v]) => `${key}: ${v}`).join(" · ");
      return el("div", null, el("span", { class: "pill match", text: main }),
        extra ? el("span", { class: "muted", text: ` ${extra}` }) : null);
    });
  }
  function renderMatches() {
    const root = section("matches");
    const ids = Object.keys(D.matches).map(Number).filter((fid) => BY_ID.has(fid));
    root.append(el("div", { class: "filters" },
      el("button", { id: "reveal-all", type: "button", onclick: () => setRevealAll(!revealAll),
        text: "Reveal all images" }),
      el("span", { class: "muted", text: "Images are blurred and grey until you reveal them." })));
    if (D.thumb_problems.length) {
      root.append(el("div", { class: "banner" }, el("strong", { text: "Thumbnail problems: " }),
        D.thumb_problems.join("; ")));
    }
    if (!ids.length) {
      root.append(el("p", { class: "muted", text: "No file matched a loaded hash set." }));
      return;
    }
    const byCategory = new Map();
    for (const fid of ids) {
      const labels = new Set(D.matches[fid].map((m) => m.category_label || m.category ||
        (m.hashset_kind === "known-good" ? "known good" : "(no category)")));
      for (const label of labels) {
        if (!byCategory.has(label)) byCategory.set(label, []);
        byCategory.get(label).push(fid);
      }
    }
    for (const [label, fids] of [...byCategory.entries()].sort()) {
      root.append(el("h2", { text: `Category ${label} — ${num(fids.length)} file(s)` }));
      const byGroup = new Map();
      for (const fid of fids) {
        const group = D.groups[fid] ? D.groups[fid].group_id : null;
        const key = group === null ? `single-${fid}` : `group-${group}`;
        if (!byGroup.has(key)) byGroup.set(key, []);
        byGroup.get(key).push(fid);
      }
      for (const [key, members] of byGroup) {
        const grid = el("div", { class: "grid" }, members.map(matchCard));
        if (key.startsWith("group-")) {
          const g = D.groups[members[0]];
          root.append(el("div", { class: "group" }, el("h3", {
            text: `Near-duplicate group ${g.group_id} (${num(g.size)} images in the media)` }), grid));
        } else {
          root.lastElementChild.classList && root.lastElementChild.classList.contains("grid")
            ? root.lastElementChild.append(...grid.childNodes) : root.append(grid);
        }
      }
    }
  }
  function matchCard(fid) {
    const row = ROWS[BY_ID.get(fid)];
    const frame = thumbFrame(fid);
    const card = el("div", { class: "mcard", "data-file-id": fid, onclick: () => showDetail(fid) },
      frame, el("div", null, revealButton(frame),
        row[C.allocated] ? null : el("span", { class: "pill del", text: "deleted" })),
      el("div", { class: "path", text: row[C.path] }),
      el("div", { class: "muted", text: `${str(row[C.fs_type])} · volume ${row[C.volume_index]}` +
        ` @ ${num(row[C.volume_offset])} · inode ${row[C.inode]}` }),
      D.groups[fid] ? el("div", { class: "muted", text: `group ${D.groups[fid].group_id}` +
        ` · ${show(D.groups[fid].algorithm)} distance ${show(D.groups[fid].distance)}` }) : null,
      matchLines(D.matches[fid]));
    return card;
  }

  // -- all files: filter, search, sort, page -----------------------------------------
  const state = { sort: "id", dir: 1, page: 0, size: 100, text: "", type: "", deleted: "",
    mismatch: false, gps: false, matched: false, snaponly: false, view: null };
  const typeOf = (row) => {
    const kind = str(row[C.kind]);
    if (kind !== "file") return kind;
    const mime = str(row[C.mime]);
    return mime ? mime.split("/")[0] : "not analysed";
  };
  function applyFilters() {
    const text = state.text.toLowerCase();
    const out = [];
    for (let i = 0; i < ROWS.length; i++) {
      const row = ROWS[i];
      if (state.deleted === "yes" && row[C.allocated]) continue;
      if (state.deleted === "no" && !row[C.allocated]) continue;
      if (state.mismatch && row[C.mismatch] !== 1) continue;
      if (state.gps && !row[C.gps]) continue;
      if (state.matched && !row[C.matched]) continue;
      if (state.snaponly && !(D.snapshots[row[C.id]] || {}).only) continue;
      if (state.type && typeOf(row) !== state.type) continue;
      if (text && row[C.path].toLowerCase().indexOf(text) < 0) continue;
      out.push(i);
    }
    const key = C[state.sort];
    const interned = D.interned.includes(state.sort);
    const dir = state.dir;
    if (state.sort !== "id" || dir !== 1) {
      out.sort((a, b) => {
        let x = ROWS[a][key]; let y = ROWS[b][key];
        if (interned) { x = str(x); y = str(y); }
        if (x === y) return a - b;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * dir;
      });
    }
    state.view = out;
  }
  const FILE_HEADERS = [["path", "Path"], ["size", "Size"], ["mime", "Type"],
    ["mtime", "Modified (UTC)"], ["taken", "Taken (camera)"], ["allocated", "Flags"]];
  function renderFilesShell() {
    const root = section("files");
    const types = [...new Set(ROWS.map(typeOf))].sort();
    const search = el("input", { type: "search", id: "file-search",
      placeholder: "Search paths…", "aria-label": "search paths" });
    let timer = null;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.text = search.value; state.page = 0; refresh(); }, 150);
    });
    const select = (id, options, key) => {
      const s = el("select", { id }, options.map(([v, l]) => el("option", { value: v, text: l })));
      s.addEventListener("change", () => { state[key] = s.value; state.page = 0; refresh(); });
      return s;
    };
    const check = (id, label, key) => {
      const box = el("input", { type: "checkbox", id });
      box.addEventListener("change", () => { state[key] = box.checked; state.page = 0; refresh(); });
      return el("label", null, box, ` ${label}`);
    };
    root.append(el("div", { class: "filters" }, search,
      el("label", null, "Type ", select("filter-type", [["", "any"], ...types.map((t) => [t, t])], "type")),
      el("label", null, "Deleted ", select("filter-deleted", [["", "any"], ["yes", "deleted only"],
        ["no", "allocated only"]], "deleted")),
      check("filter-mismatch", "extension mismatch", "mismatch"),
      check("filter-gps", "has GPS", "gps"), check("filter-matched", "matched", "matched"),
      check("filter-snaponly", "only in shadow copies", "snaponly")));
    const head = el("tr", null, FILE_HEADERS.map(([key, label]) => {
      const th = el("th", { class: "sortable", "data-sort": key, text: label });
      th.addEventListener("click", () => {
        state.dir = state.sort === key ? -state.dir : 1;
        state.sort = key;
        state.page = 0;
        refresh();
      });
      return th;
    }));
    root.append(el("div", { class: "pager" }, el("span", { id: "files-count" })),
      el("div", { class: "panel" }, el("table", { id: "files-table" }, el("thead", null, head),
        el("tbody"))),
      el("div", { class: "pager", id: "pager" }));
  }
  function refresh() {
    applyFilters();
    renderPage();
  }
  function flagPills(row) {
    return [row[C.allocated] ? null : el("span", { class: "pill del", text: "deleted" }),
      row[C.mismatch] === 1 ? el("span", { class: "pill mis", text: "mismatch" }) : null,
      row[C.gps] ? el("span", { class: "pill gps", text: "GPS" }) : null,
      row[C.matched] ? el("span", { class: "pill match", text: `matched ×${row[C.matched]}` }) : null,
      row[C.errors] ? el("span", { class: "pill del", text: `errors ×${row[C.errors]}` }) : null,
      snapPill(row[C.id])];
  }
  function snapPill(fid) {
    const snap = D.snapshots[fid];
    if (!snap) return null;
    return el("span", { class: snap.only ? "pill del" : "pill",
      text: `shadow copy ${snap.index}${snap.only ? " only" : ""}` });
  }
  function renderPage() {
    const view = state.view;
    const pages = Math.max(1, Math.ceil(view.length / state.size));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * state.size;
    const slice = view.slice(start, start + state.size);
    const body = document.querySelector("#files-table tbody");
    body.replaceChildren(...slice.map((i) => {
      const row = ROWS[i];
      const kind = str(row[C.kind]);
      return el("tr", { "data-file-id": row[C.id], onclick: () => showDetail(row[C.id]) },
        el("td", { class: "mono", text: row[C.path] }),
        el("td", { class: "num", text: kind === "file" ? num(row[C.size]) : "" }),
        el("td", { text: kind === "file" ? show(str(row[C.mime])) : kind }),
        el("td", { text: show(row[C.mtime]) }), el("td", { text: show(row[C.taken]) }),
        el("td", null, flagPills(row)));
    }));
    document.querySelectorAll("#files-table th").forEach((th) => {
      th.classList.toggle("sorted-asc", th.dataset.sort === state.sort && state.dir === 1);
      th.classList.toggle("sorted-desc", th.dataset.sort === state.sort && state.dir === -1);
    });
    document.getElementById("files-count").textContent = view.length
      ? `Showing ${num(start + 1)}–${num(start + slice.length)} of ${num(view.length)}` +
        (view.length !== ROWS.length ? ` (filtered from ${num(ROWS.length)})` : "")
      : `No entries match (of ${num(ROWS.length)})`;
    const pager = document.getElementById("pager");
    const go = (p) => () => { state.page = p; renderPage(); };
    const size = el("select", { id: "page-size" }, [50, 100, 250, 500].map((n) =>
      el("option", { value: n, text: `${n} per page`, selected: n === state.size ? "" : null })));
    size.addEventListener("change", () => { state.size = Number(size.value); state.page = 0; renderPage(); });
    pager.replaceChildren(
      el("button", { type: "button", id: "page-first", onclick: go(0), disabled: state.page === 0 ? "" : null, text: "« first" }),
      el("button", { type: "button", id: "page-prev", onclick: go(state.page - 1), disabled: state.page === 0 ? "" : null, text: "‹ previous" }),
      el("span", { text: `page ${num(state.page + 1)} of ${num(pages)}` }),
      el("button", { type: "button", id: "page-next", onclick: go(state.page + 1), disabled: state.page >= pages - 1 ? "" : null, text: "next ›" }),
      el("button", { type: "button", id: "page-last", onclick: go(pages - 1), disabled: state.page >= pages - 1 ? "" : null, text: "last »" }),
      size);
  }

  // -- file detail -------------------------------------------------------------------
  function showDetail(fid) {
    const row = ROWS[BY_ID.get(fid)];
    if (!row) return;
    const sheet = document.querySelector("#detail .sheet");
    const exif = D.exif[fid];
    const location = {
      evidence_sha256: str(row[C.evidence]), volume_index: row[C.volume_index],
      volume_offset: row[C.volume_offset], fs_type: str(row[C.fs_type]), inode: row[C.inode],
      path: row[C.path], stream: row[C.stream] };
    const parts = [
      el("button", { class: "close", type: "button", id: "detail-close", text: "Close ✕",
        onclick: closeDetail }),
      el("h2", { class: "mono", text: row[C.path] }), el("div", null, flagPills(row)),
    ];
    if (D.thumbs[fid]) {
      const frame = thumbFrame(fid);
      parts.push(el("div", { class: "mcard", style: null }, frame, revealButton(frame)));
    }
    parts.push(el("h3", { text: "Evidence location" }), kv([
      ["Evidence (SHA-256)", location.evidence_sha256, "mono"],
      ["Volume", `#${location.volume_index} at byte ${num(location.volume_offset)}`],
      ["Filesystem", location.fs_type], ["Inode", location.inode], ["Path", location.path, "mono"],
      ["Stream", location.stream], ["Location (JSON)", JSON.stringify(location), "mono"]]));
    const snap = D.snapshots[fid];
    if (snap) {
      parts.push(el("h3", { text: "Shadow copy" }), kv([
        ["Store", `#${snap.index}`], ["Shadow copy id", snap.id, "mono"],
        ["Created", snap.created],
        ["Only in shadow copies", snap.only ? "yes: no live file has this content" : "no"],
        ["Analysed as", snap.same_as === null ? "itself" :
          `file ${snap.same_as} (the live file: same data runs, no block saved since)`]]));
    }
    const derived = D.derived[fid];
    if (derived) {
      parts.push(el("h3", { text: "Inside another file" }), kv([
        ["Derived from", derived.derived_from, "mono"]]),
        el("button", { type: "button", text: "Open the container",
          onclick: () => showDetail(derived.parent_id) }),
        el("table", { class: "chain" },
          el("tr", null, ["step", "method", "version", "inner path", "offset", "length"]
            .map((h) => el("th", { text: h }))),
          derived.chain.map((step, i) => el("tr", null, [String(i + 1), step.method,
            step.version, step.inner, step.offset, step.length].map((v) =>
            el("td", { class: "mono", text: show(v) }))))));
    }
    parts.push(el("h3", { text: "File system" }), kv([
      ["Kind", str(row[C.kind])], ["Allocated", row[C.allocated] ? "yes" : "no (deleted)"],
      ["Size", `${num(row[C.size])} bytes`], ["Modified (mtime)", row[C.mtime]],
      ["Accessed (atime)", row[C.atime]], ["Changed (ctime)", row[C.ctime]],
      ["Created (crtime)", row[C.crtime]]]));
    parts.push(el("h3", { text: "Content" }), kv([
      ["MD5", row[C.md5], "mono"], ["SHA-1", row[C.sha1], "mono"], ["SHA-256", row[C.sha256], "mono"],
      ["MIME type", str(row[C.mime])], ["libmagic", str(row[C.magic])],
      ["Extension mismatch", row[C.mismatch] === null ? null : row[C.mismatch] ? "YES" : "no"]]));
    const perceptual = D.perceptual[fid];
    if (perceptual) {
      parts.push(el("h3", { text: "Perceptual hashes" }), kv([
        ["pHash", perceptual.phash, "mono"], ["dHash", perceptual.dhash, "mono"],
        ["PDQ", perceptual.pdq, "mono"], ["PDQ quality", perceptual.pdq_quality]]));
    }
    if (exif) {
      parts.push(el("h3", { text: "EXIF" }), kv(Object.entries(exif).map(([k, v]) => [k,
        typeof v === "object" && v !== null ? JSON.stringify(v) : v])));
    }
    if (D.matches[fid]) {
      parts.push(el("h3", { text: "Known-hash matches" }), el("table", null,
        (() => {
          const keys = [...new Set(D.matches[fid].flatMap((m) => Object.keys(m)))];
          return [el("tr", null, keys.map((k) => el("th", { text: k }))),
            ...D.matches[fid].map((m) => el("tr", null, keys.map((k) =>
              el("td", { class: k === "known_value" ? "mono" : null, text: show(m[k]) }))))];
        })()));
    }
    if (D.groups[fid]) parts.push(el("h3", { text: "Near-duplicate group" }), kv(Object.entries(D.groups[fid])));
    if (D.errors[fid]) {
      parts.push(el("h3", { text: "Errors" }), el("table", null,
        el("tr", null, ["stage", "analyzer", "error", "message"].map((h) => el("th", { text: h }))),
        D.errors[fid].map((e) => el("tr", null, el("td", { text: e.stage }),
          el("td", { text: show(e.analyzer) }), el("td", { text: e.error }),
          el("td", { text: e.message })))));
    }
    sheet.replaceChildren(...parts);
    section("detail").classList.add("open");
    document.getElementById("detail-close").focus();
  }
  function closeDetail() { section("detail").classList.remove("open"); }
  section("detail").addEventListener("click", (event) => {
    if (event.target === section("detail")) closeDetail();
  });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeDetail(); });

  // -- pictures: timeline histogram and GPS plot -------------------------------------
  let picturesDone = false;
  function renderPictures() {
    if (picturesDone) return;
    picturesDone = true;
    const root = section("pictures");
    const t = D.timeline;
    root.append(el("h2", { text: `Timeline by ${t.unit}` }),
      el("p", { class: "muted legend" }, "Files by camera capture time (EXIF) where known,",
        " otherwise by modification time.", el("span", { class: "captured" }), "captured",
        el("span", { class: "modified" }), "modified",
        t.out_of_range ? ` · ${num(t.out_of_range)} time(s) outside 1981–next year not shown` : ""),
      el("div", { class: "panel" }, t.buckets.length ? timelineSvg(t) : el("p", { class: "muted",
        text: "No times to show." })));
    root.append(el("h2", { text: `GPS positions (${num(D.gps.length)} photo(s))` }),
      el("p", { class: "muted", text: "Longitude/latitude plot (equirectangular, no map tiles:" +
        " the report works offline). Click a point for the file." }),
      el("div", { class: "panel" }, D.gps.length ? gpsSvg() : el("p", { class: "muted",
        text: "No photo with GPS coordinates." })));
  }
  function timelineSvg(t) {
    const W = 1100; const H = 260; const left = 50; const bottom = 50; const top = 14;
    const n = t.buckets.length;
    const max = Math.max(1, ...t.buckets.map((b) => b[1] + b[2]));
    const bw = (W - left - 10) / n;
    const y = (v) => top + (H - top - bottom) * (1 - v / max);
    const out = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
      "aria-label": "timeline histogram", id: "timeline-svg" });
    for (let i = 0; i <= 4; i++) {
      const v = Math.round((max * i) / 4);
      out.append(svg("line", { class: "grid-line", x1: left, x2: W - 10, y1: y(v), y2: y(v) }),
        svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, num(v)));
    }
    const every = Math.max(1, Math.ceil(n / 16));
    t.buckets.forEach(([label, captured, modified], i) => {
      const x = left + i * bw;
      const w = Math.max(1, bw - 1);
      if (captured) out.append(svg("rect", { class: "bar-captured", x, width: w, y: y(captured),
        height: y(0) - y(captured) }, svg("title", null, `${label}: ${captured} captured`)));
      if (modified) out.append(svg("rect", { class: "bar-modified", x, width: w,
        y: y(captured + modified), height: y(captured) - y(captured + modified) },
        svg("title", null, `${label}: ${modified} modified`)));
      if (i % every === 0) out.append(svg("text", { x: x + bw / 2, y: H - bottom + 14,
        "text-anchor": "end", transform: `rotate(-40 ${x + bw / 2} ${H - bottom + 14})` }, label));
    });
    out.append(svg("line", { class: "axis", x1: left, x2: W - 10, y1: y(0), y2: y(0) }));
    return out;
  }
  function gpsSvg() {
    const W = 1000; const pad = 40;
    let [minLon, maxLon, minLat, maxLat] = [180, -180, 90, -90];
    for (const [, lat, lon] of D.gps) {
      minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon);
      minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
    }
    const spanLon = Math.max(maxLon - minLon, 0.02); const spanLat = Math.max(maxLat - minLat, 0.02);
    minLon = Math.max(-180, minLon - spanLon * 0.08); maxLon = Math.min(180, maxLon + spanLon * 0.08);
    minLat = Math.max(-90, minLat - spanLat * 0.08); maxLat = Math.min(90, maxLat + spanLat * 0.08);
    const sx = (W - 2 * pad) / (maxLon - minLon); const sy = (560 - 2 * pad) / (maxLat - minLat);
    const s = Math.min(sx, sy);
    const H = Math.round(2 * pad + (maxLat - minLat) * s);
    const x = (lon) => pad + (lon - minLon) * s;
    const y = (lat) => H - pad - (lat - minLat) * s;
    const out = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
      "aria-label": "GPS positions", id: "gps-svg" });
    const span = Math.max(maxLon - minLon, maxLat - minLat);
    const step = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 15, 30, 45].find((v) => span / v <= 10) || 45;
    for (let lon = Math.ceil(minLon / step) * step; lon <= maxLon; lon += step) {
      out.append(svg("line", { class: "grid-line", x1: x(lon), x2: x(lon), y1: y(minLat), y2: y(maxLat) }),
        svg("text", { x: x(lon), y: y(minLat) + 14, "text-anchor": "middle" },
          `${Math.abs(+lon.toFixed(2))}°${lon < 0 ? "W" : lon > 0 ? "E" : ""}`));
    }
    for (let lat = Math.ceil(minLat / step) * step; lat <= maxLat; lat += step) {
      out.append(svg("line", { class: "grid-line", x1: x(minLon), x2: x(maxLon), y1: y(lat), y2: y(lat) }),
        svg("text", { x: x(minLon) - 4, y: y(lat) + 4, "text-anchor": "end" },
          `${Math.abs(+lat.toFixed(2))}°${lat < 0 ? "S" : lat > 0 ? "N" : ""}`));
    }
    for (const [fid, lat, lon] of D.gps) {
      const row = ROWS[BY_ID.get(fid)];
      const point = svg("circle", { class: row[C.allocated] ? "point" : "point deleted",
        cx: x(lon), cy: y(lat), r: 6, "data-file-id": fid },
        svg("title", null, `${row[C.path]}\n${lat.toFixed(6)}, ${lon.toFixed(6)}` +
          `${row[C.taken] ? `\ntaken ${row[C.taken]}` : ""}`));
      point.addEventListener("click", () => showDetail(fid));
      out.append(point);
      const name = row[C.path].split("/").pop();
      out.append(svg("text", { x: x(lon) + 8, y: y(lat) - 6 }, name));
    }
    return out;
  }

  // -- start -------------------------------------------------------------------------
  renderOverview();
  renderMatches();
  renderFilesShell();
  refresh();
  showTab(location.hash === "#matches" ? "matches" : "overview");
  document.body.setAttribute("data-ready", "1");
})();
