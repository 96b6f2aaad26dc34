// Jobs (preview / simulate / plan): submitting, following, cancelling, and
// showing what they produced (the overlays, the figures, the plan, the files).

import { followJob, getBytes, getJson, postJson } from "./api.js";

const KINDS = ["preview", "simulate", "plan"];
const FINAL = ["done", "failed", "cancelled"];
// the full result follows a preview once the probes have rested this long (a drag goes on
// moving them: each move cancels the full run it started)
const FULL_DELAY_MS = 1500;
const fmt = (v, digits = 1) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "–");
const fileUrl = (job, name) => `/api/jobs/${job.id}/files/${encodeURIComponent(name)}`;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function table(rows) {
  return el("table", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
}

function fileLinks(job, files) {
  return el(
    "ul",
    { class: "files" },
    ...files.map((name) =>
      el("li", {}, el("a", name.endsWith(".html") ? { href: fileUrl(job, name), target: "_blank" } : { href: fileUrl(job, name), download: name }, name)),
    ),
  );
}

// Every layout the planner tried (on its search model), as its summary lists them; each
// can be used in the plan's place (`use(index)`)
function alternativesTable(rows, use) {
  if (!rows.length) return null;
  const head = ["probes", "protocol", "lethal %", "ice margin mm", "met", "P(met)", ""];
  return el(
    "details",
    { id: "plan-alternatives" },
    el("summary", {}, `Alternatives tried (${rows.length})`),
    el(
      "table",
      {},
      el("tr", {}, ...head.map((h) => el("th", {}, h))),
      ...rows.map((a, index) =>
        el(
          "tr",
          {},
          ...[`${a.probes}`, a.protocol, fmt(a.lethal_coverage_percent), fmt(a.ice_margin_mm), a.met_on_model ? "yes" : "no", fmt(a.success_probability, 2)].map((v) => el("td", {}, v)),
          el("td", {}, a.probe_specs ? el("button", { class: "use-alternative", onclick: () => use(index) }, "Use") : null),
        ),
      ),
    ),
  );
}

export class Jobs {
  constructor({ say, viewer, previewDelayMs, acceptPlan, moveTo }) {
    Object.assign(this, { say, viewer, previewDelayMs, acceptPlan, moveTo });
    this.caseInfo = null;
    this.latest = {}; // kind -> {job, follower, version, seq}
    this.version = 0; // the probes' placement, counted up at each move
    this.seq = 0; // submissions, in order
    this.shown = [-1, -1]; // (version, seq) of the result on screen
    this.previewTimer = null;
    this.fullTimer = null;
    document.getElementById("simulate").onclick = () => {
      // the full result of this placement already under way (after its preview): keep it
      const running = this.latest.simulate;
      if (running && running.version === this.version && !["failed", "cancelled"].includes(running.job.state)) return;
      this.submit("simulate");
    };
    document.getElementById("plan").onclick = () => this.submit("plan");
  }

  setCase(info) {
    for (const entry of Object.values(this.latest)) if (entry.follower) entry.follower.close();
    clearTimeout(this.previewTimer);
    Object.assign(this, { caseInfo: info, latest: {}, version: 0, seq: 0, shown: [-1, -1] });
    document.getElementById("job-rows").replaceChildren();
    document.getElementById("results").hidden = true;
    document.getElementById("plan-result").hidden = true;
    document.getElementById("simulate").disabled = false;
    document.getElementById("plan").disabled = false;
    this.viewer.clearResult();
    document.getElementById("probability-legend").hidden = true; // the viewer has no plan's map yet
    const exportSection = document.getElementById("export");
    exportSection.hidden = false;
    document.getElementById("export-links").replaceChildren(
      el("li", {}, el("a", { href: `/api/cases/${info.id}/markups`, download: `${info.name}-probes.mrk.json` }, "probes (3D Slicer markups)")),
      el("li", {}, el("a", { href: `/api/cases/${info.id}/case.yaml`, download: `${info.name}.yaml` }, "the case file (YAML)")),
    );
    // A case opened again: its last finished simulation (or preview) and plan
    const done = (kind) => info.jobs.filter((j) => j.kind === kind && j.state === "done").sort((a, b) => a.created - b.created).pop();
    const result = done("simulate") || done("preview");
    if (result) this.showDone({ job: result, version: 0, seq: 0 });
    const plan = done("plan");
    if (plan) this.showDone({ job: plan, version: 0, seq: 0 });
  }

  // Probes are moving: a preview of the old placement is of no use any more.
  probesMoving() {
    this.version++;
    clearTimeout(this.previewTimer);
    clearTimeout(this.fullTimer);
    const preview = this.latest.preview;
    if (preview && !FINAL.includes(preview.job.state)) this.cancel(preview);
    const full = this.latest.simulate;
    if (full && full.auto && !FINAL.includes(full.job.state)) this.cancel(full);
  }

  // A preview of the current placement is shown: its full result follows, unless the
  // probes move again first or the user turned this off.
  scheduleFull() {
    clearTimeout(this.fullTimer);
    if (!document.getElementById("auto-full").checked) return;
    const version = this.version;
    this.fullTimer = setTimeout(() => {
      const full = this.latest.simulate; // one the user started meanwhile stands
      if (version === this.version && !(full && full.version === version)) this.submit("simulate", true);
    }, FULL_DELAY_MS);
  }

  // The new placement is saved: preview it once the user pauses.
  probesSaved(hasProbes) {
    clearTimeout(this.previewTimer);
    if (hasProbes) this.previewTimer = setTimeout(() => this.submit("preview"), this.previewDelayMs);
  }

  async submit(kind, auto = false) {
    const caseId = this.caseInfo.id;
    const entry = { version: this.version, seq: ++this.seq, auto };
    try {
      entry.job = await postJson(`/api/cases/${caseId}/jobs`, { kind });
    } catch (error) {
      this.say(`${kind}: ${error.message}`, true);
      return;
    }
    if (this.caseInfo.id !== caseId) return; // another case was opened meanwhile
    const previous = this.latest[kind];
    if (previous && previous.follower) previous.follower.close();
    this.latest[kind] = entry;
    this.renderRow(kind);
    entry.follower = followJob(entry.job.id, (job) => {
      entry.job = job;
      this.renderRow(kind);
    });
    try {
      const job = await entry.follower.promise;
      // a preview of a placement that has changed since is dropped
      const stale = kind === "preview" && entry.version < this.version;
      if (job && job.state === "done" && this.latest[kind] === entry && !stale) {
        await this.showDone(entry);
        if (kind === "preview") this.scheduleFull();
      }
      if (job && job.state === "failed") this.say(`${kind} failed: ${job.error}`, true);
    } catch (error) {
      this.say(error.message, true);
    }
  }

  // The job stops at its next progress report; its event stream says when.
  async cancel(entry) {
    try {
      entry.job = await postJson(`/api/jobs/${entry.job.id}/cancel`);
    } catch (error) {
      this.say(error.message, true);
    }
    const kind = entry.job.kind;
    if (this.latest[kind] === entry) this.renderRow(kind);
  }

  renderRow(kind) {
    const entry = this.latest[kind];
    const job = entry.job;
    const final = ["done", "failed", "cancelled"].includes(job.state);
    const fresh = el(
      "div",
      { class: `job ${job.state}`, "data-kind": kind, "data-state": job.state, "data-id": job.id },
      el(
        "div",
        { class: "head" },
        el("b", {}, kind),
        el("span", { class: "state" }, job.state),
        final ? null : el("button", { class: "cancel", onclick: () => this.cancel(entry) }, "Cancel"),
      ),
      final ? null : el("progress", { max: "1", value: String(job.progress || 0) }),
      job.state === "running" ? el("div", { class: "msg" }, `${job.message} (${Math.round(100 * job.progress)} %)`) : null,
      job.error ? el("div", { class: "error" }, job.error) : null,
    );
    // one simulation and one plan at a time (a preview is replaced instead)
    if (kind !== "preview") document.getElementById(kind).disabled = !final;
    const rows = document.getElementById("job-rows");
    const row = rows.querySelector(`.job[data-kind="${kind}"]`);
    if (row) {
      row.replaceWith(fresh);
      return;
    }
    // rows in a fixed order: preview, simulate, plan
    const next = KINDS.slice(KINDS.indexOf(kind) + 1)
      .map((k) => rows.querySelector(`.job[data-kind="${k}"]`))
      .find(Boolean);
    rows.insertBefore(fresh, next || null);
  }

  async showDone(entry) {
    const job = await getJson(`/api/jobs/${entry.job.id}`); // with its files
    if (job.kind === "plan") return this.showPlan(job);
    // A result older than the one on screen (a preview that finished after a
    // later simulation, say) does not replace it.
    const order = [entry.version, entry.seq];
    if (order[0] < this.shown[0] || (order[0] === this.shown[0] && order[1] < this.shown[1])) return;
    this.shown = order;
    const has = (name) => job.files.includes(name);
    const onImage = has("tmin_on_image.nii.gz"); // an image case: overlays on its grid
    const [tminBytes, lethalBytes, isothermBytes, figures] = await Promise.all([
      onImage ? getBytes(fileUrl(job, "tmin_on_image.nii.gz")) : null,
      has("lethal_on_image.nii.gz") ? getBytes(fileUrl(job, "lethal_on_image.nii.gz")) : null,
      onImage ? getBytes(`/api/jobs/${job.id}/isotherms`) : null, // their lines, from the server
      getJson(fileUrl(job, job.kind === "preview" ? "preview.json" : "summary.json")),
    ]);
    if (this.shown !== order) return; // overtaken while downloading
    const opacity = (id) => Number(document.getElementById(`${id}-opacity`).value);
    await this.viewer.showResult({
      tminBytes,
      lethalBytes,
      isothermBytes,
      opacity: { cold: opacity("cold"), lethal: opacity("lethal"), isotherms: opacity("isotherms") },
    });
    document.body.dataset.overlayJob = job.id; // for the tests
    const stale = entry.version < this.version ? el("p", { class: "muted" }, "The probes have moved since this run.") : null;
    const body = job.kind === "preview" ? this.previewBody(figures) : this.summaryBody(job, figures);
    document.getElementById("results-kind").textContent = job.kind;
    document.getElementById("results-body").replaceChildren(...[stale, ...body].filter(Boolean));
    document.getElementById("results").hidden = false;
  }

  previewBody(f) {
    return [
      table([
        ["lethal zone", `${fmt(f.lethal_volume_ml)} mL`],
        ["target in the lethal zone", `${fmt(f.target_lethal_percent)} %`],
        ["minimum margin", `${fmt(f.minimum_margin_mm)} mm`],
        ["grid", `${fmt(f.spacing_mm)} mm (a coarse preview: Simulate for the full result)`],
      ]),
    ];
  }

  summaryBody(job, summary) {
    const outcome = summary.outcome || {};
    const verdict = outcome.verdict || {};
    const target = outcome.target || {};
    const margin = target.margin_mm || {};
    const worst = margin.minimum_at_lps_mm;
    const reportLink = () => el("a", { href: fileUrl(job, "report.html"), target: "_blank", id: "report-link" }, "Open the report");
    // the job is done when its results are published; its report follows a few seconds
    // later: the link appears when the file does
    const report = el("p", {}, job.files.includes("report.html") ? reportLink() : "writing the report…");
    if (!job.files.includes("report.html")) this.awaitReport(job, report, reportLink);
    return [
      el("p", { class: `verdict ${verdict.complete_ablation_with_margin ? "good" : "bad"}` }, verdict.text || "no verdict"),
      table([
        ["target in the lethal zone", `${fmt((target.coverage_percent || {}).lethal)} %`],
        ["minimum margin", `${fmt(margin.minimum)} mm${margin.minimum_side ? ` (${margin.minimum_side})` : ""}`],
      ]),
      worst ? el("button", { id: "worst-point", onclick: () => this.moveTo(worst) }, "Worst point") : null,
      (outcome.warnings || []).length ? el("ul", { class: "warnings" }, ...outcome.warnings.map((w) => el("li", {}, w))) : null,
      report,
      el("details", {}, el("summary", {}, `All files (${job.files.length})`), fileLinks(job, job.files)),
    ];
  }

  async awaitReport(job, holder, link, triesLeft = 180) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (!holder.isConnected) return; // another result replaced this one
    const now = await getJson(`/api/jobs/${job.id}`);
    if ((now.files || []).includes("report.html")) holder.replaceChildren(link());
    else if (now.message && now.message.includes("report failed")) holder.textContent = now.message;
    else if (triesLeft > 1) this.awaitReport(job, holder, link, triesLeft - 1);
  }

  async showPlan(job) {
    const summary = await getJson(fileUrl(job, "summary.json"));
    // the planner's lethal probability under placement error, over the image
    const probability = "lethal_probability_on_image.nii.gz";
    const bytes = job.files.includes(probability) ? await getBytes(fileUrl(job, probability)) : null;
    if (this.caseInfo.id !== job.case_id) return; // another case was opened meanwhile
    await this.viewer.showProbability(bytes, Number(document.getElementById("probability-opacity").value));
    document.getElementById("probability-legend").hidden = !bytes;
    const plan = summary.plan || {};
    const probes = (plan.probes || []).map((p) => ({ name: p.name, model: p.model, tip_mm: p.tip_mm, entry_mm: p.entry_mm }));
    const rows = (plan.probes || []).map((p) =>
      el("tr", {}, ...[p.name, fmt(p.depth_mm, 0), fmt(p.angle_from_axial_plane_deg, 0), fmt(p.clearance_mm), p.closest_no_fly || "–"].map((v) => el("td", {}, v))),
    );
    const body = [
      el("p", { class: `verdict ${plan.meets_objective ? "good" : "bad"}`, id: "plan-status" }, `${plan.status}${plan.blocked ? `: ${plan.blocked}` : ""}`),
      table([
        ["probes", `${plan.probe_count ?? probes.length}`],
        ["protocol", plan.protocol || "–"],
        ["target covered", `${fmt(plan.coverage_percent)} %`],
        ["least ice margin", `${fmt(plan.minimum_ice_margin_mm)} mm`],
        ["P(objective met)", fmt(plan.success_probability, 2)],
      ]),
      el(
        "table",
        { id: "plan-probes" },
        el("tr", {}, ...["probe", "depth mm", "tilt °", "clear. mm", "closest no-fly"].map((h) => el("th", {}, h))),
        ...rows,
      ),
      probes.length
        ? el(
            "button",
            {
              id: "accept-plan",
              // its probes and its protocol (the server reads plan.yaml)
              onclick: () => this.acceptPlan(job.id).catch((error) => this.say(error.message, true)),
            },
            "Use this plan",
          )
        : null,
      alternativesTable(plan.alternatives || [], (index) => this.acceptPlan(job.id, index).catch((error) => this.say(error.message, true))),
      fileLinks(job, job.files),
    ];
    document.getElementById("plan-body").replaceChildren(...body.filter(Boolean));
    document.getElementById("plan-result").hidden = false;
  }
}
