// cryoplan's browser application: open a case, place probes on its image,
// preview / simulate / plan on the server, and look at the results.
//
// Built by web/build.mjs into src/cryoplan/server/static/app.js (one IIFE);
// `cryoplan serve` serves it with app.html (as index.html) and app.css. It
// loads nothing but the server's API: no CDN, no web fonts.
//
// The server is the truth: every probe change is saved there (PUT) before a
// job is submitted, because a job runs the case as stored when it is submitted.

import { ApiError, deleteJson, getBytes, getJson, postJson, putJson } from "./app/api.js";
import { Jobs } from "./app/jobs.js";
import { COLD_RGB, ISOTHERMS, LETHAL_RGB, PROBABILITY_STOPS, TARGET_RGB, Viewer, WINDOWS, probeColour } from "./app/viewer.js";

const $ = (id) => document.getElementById(id);
const PREVIEW_DELAY_MS = 300; // a probe dragged around submits one preview, not ten
let probeModels = ["argon-17g"]; // the catalogue's names (GET /api/probe-models at start)
const round1 = (v) => Math.round(v * 10) / 10;
const fmt = (v, digits = 1) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "–");

const state = {
  case: null, // GET /api/cases/{id}
  probes: [], // [{name, model, tip_mm, entry_mm}] in LPS mm, as in the case file
  selected: 0,
  placing: null, // "tip" | "entry" while waiting for a click on a slice
  dragging: null, // a probe's end being dragged on a slice (onPress)
  paths: [], // POST /api/cases/{id}/paths, by probe
  crosshair: null, // the last crosshair position, LPS mm
  drawing: false, // the target is being drawn: the mouse paints, probes stay put
};

let viewer;
let jobs;

function say(text, isError = false) {
  const el = $("message");
  el.textContent = text;
  el.title = text; // the whole line, where the header cuts it
  el.classList.toggle("error", isError);
}

// Errors the user caused (the server's 400 line) are shown; others also go to
// the console, where they belong to us.
function report(where, error) {
  const text = error instanceof ApiError ? error.message : `${error.message || error}`;
  if (!(error instanceof ApiError)) console.error(error);
  if (where) $(where).textContent = text;
  else say(text, true);
}

// --- opening a case ------------------------------------------------------------

async function fillLists() {
  const [examples, cases] = await Promise.all([getJson("/api/examples"), getJson("/api/cases")]);
  $("examples").replaceChildren(
    ...examples.map((e) => Object.assign(new Option(e.name, e.name), { title: e.title })),
  );
  $("open-example").disabled = examples.length === 0;
  $("cases").replaceChildren(...cases.map((c) => new Option(`${c.name} (${c.id.slice(0, 6)})`, c.id)));
  $("open-case").disabled = cases.length === 0;
}

// `volumes`: the case's volumes, where they are already on their way (fetchVolumes)
async function openCase(fetchCase, volumes = null) {
  $("open-error").textContent = "";
  say("opening the case…");
  try {
    const info = await fetchCase();
    await showCase(info, volumes);
    await fillLists();
  } catch (error) {
    $("still").hidden = true; // no still of a case that could not be opened
    report("open-error", error);
    say("");
  }
}

// A case's image and label map (bytes, or null where it has none), fetched together
const fetchVolumes = (info) =>
  Promise.all([info.files.image ? getBytes(info.files.image) : null, info.files.labels ? getBytes(info.files.labels) : null]);

async function showCase(info, volumes = null) {
  state.case = info;
  state.probes = (info.case.probes || []).map((p) => ({ ...p }));
  state.selected = 0;
  state.placing = null;
  state.paths = [];
  if (state.drawing) setDrawing(false);
  $("case-title").textContent = `${info.name} · ${info.id}`;
  history.replaceState(null, "", `#case=${info.id}`); // a reload reopens it

  const image = (info.case.domain && info.case.domain.image) || {};
  say("loading the image…");
  const [imageBytes, labelsBytes] = await (volumes || fetchVolumes(info));
  // The case file names the stored files (image.nii.gz, labels.nrrd, …): their
  // suffix tells NiiVue the format, which the URL does not. A DICOM series or SEG is
  // served as its NIfTI copy.
  const volumeName = (name, copy) => (/\.(nii(\.gz)?|nrrd|mha)$/i.test(name || "") ? name : copy);
  await viewer.showCase({
    imageBytes,
    imageName: volumeName(image.file, "image.nii.gz"),
    labelsBytes,
    labelsName: volumeName(image.labels, "labels.nii.gz"),
    labelNames: info.label_names,
    labelOpacity: Number($("label-opacity").value),
    centre: targetCentre(),
    probes: state.probes,
    selected: state.selected,
  });
  $("window").value = viewer.looksLikeCt() ? "CT soft tissue" : "MRI / auto";
  $("still").hidden = true; // the viewer's own slices from now on
  jobs.setCase(info);
  renderTarget();
  showTargetOutline();
  renderProbes();
  $("open-panel").open = false; // room for the probe list; a click reopens it
  document.body.dataset.caseId = info.id;
  document.body.dataset.caseAt = performance.now().toFixed(0); // for the benchmark: ms since the page was opened
  say(`${info.name}: ${Object.keys(info.label_names).length} labels`);
  if (state.probes.length) updatePaths();
}

// The target's centre: a lesion's centre, or the selected probe's tip.
function targetCentre() {
  const c = state.case && state.case.case;
  if (!c) return null;
  const lesions = (c.domain && c.domain.image && c.domain.image.lesions) || [];
  const lesion = lesions.find((l) => (l.tissue || "tumour") === c.target) || lesions[0];
  if (lesion && lesion.centre_mm) return lesion.centre_mm;
  const probe = state.probes[state.selected];
  return probe ? probe.tip_mm : null;
}

function goToTarget() {
  const centre = targetCentre();
  viewer.centreView(centre || undefined);
}

// --- target --------------------------------------------------------------------

const TARGET = "tumour"; // the tissue a chosen target is simulated as (tissues.yaml)

// What the case targets, in words, and the label list to choose from.
function renderTarget() {
  const c = state.case.case;
  const image = (c.domain && c.domain.image) || {};
  const mapped = Object.entries(image.tissues || {}).filter(([, tissue]) => tissue === c.target);
  const lesion = (image.lesions || []).find((l) => l.tissue === c.target);
  const names = state.case.label_names;
  let what = "no target: choose a label, or place a sphere";
  const drawn = state.case.drawn_target;
  if (drawn && image.labels === drawn.labels && (image.tissues || {})[drawn.label] === c.target) what = `${c.target}: drawn by hand, ${drawn.voxels} voxels`;
  else if (lesion) what = `${c.target}: a ${lesion.diameter_mm} mm sphere at ${lesion.centre_mm.map(round1).join(", ")}`;
  else if (mapped.length) what = `${c.target}: ${mapped.map(([key]) => names[key] || key).join(", ")}`;
  else if (c.target) what = `${c.target}`;
  $("target-now").textContent = `${what}; margin ${c.margin_mm ?? 5} mm`;
  $("margin").value = c.margin_mm ?? 5;
  $("draw-discard").hidden = !drawn || state.drawing;
  $("target-label").replaceChildren(...Object.entries(names).map(([value, name]) => new Option(`${value} ${name}`, value)));
}

// The target chosen: the case's tissues and lesions edited, saved whole by the server.
async function setTarget(change) {
  $("target-error").textContent = "";
  const image = state.case.case.domain.image;
  // the former target's label or sphere no longer counts as the target
  const tissues = Object.fromEntries(Object.entries(image.tissues || {}).filter(([, t]) => t !== TARGET));
  const lesions = (image.lesions || []).filter((l) => l.tissue !== TARGET);
  if (change.label !== undefined) tissues[change.label] = TARGET;
  if (change.sphere) lesions.push({ centre_mm: change.sphere.centre_mm, diameter_mm: change.sphere.diameter_mm, tissue: TARGET });
  try {
    const info = await putJson(`/api/cases/${state.case.id}`, {
      image: { tissues, lesions },
      target: TARGET,
      margin_mm: Number($("margin").value),
    });
    state.case.case = info.case;
    state.case.drawn_target = info.drawn_target;
    targetChanged();
  } catch (error) {
    report("target-error", error);
  }
}

function targetChanged() {
  renderTarget();
  showTargetOutline();
  jobs.probesMoving(); // results of the old target are stale
  jobs.probesSaved(state.probes.length > 0);
  updatePaths();
}

// --- a target drawn by hand ------------------------------------------------------
// NiiVue's pen paints voxels of the image's grid; "Use drawing as target" sends them to
// the server, which writes them into a new label map as the target (the case's own label
// map is kept), and "Discard the drawn target" goes back to that one.

const pen = () => ({ size: Number($("pen-size").value), erase: $("pen-erase").checked, fill: $("pen-fill").checked });

function setDrawing(on) {
  state.drawing = on;
  state.placing = null;
  if (on) viewer.startDrawing(pen());
  else viewer.stopDrawing();
  $("draw-tools").hidden = !on;
  $("draw-start").hidden = on;
  $("canvas-box").classList.toggle("drawing", on);
  renderTarget();
  renderProbes();
}

async function useDrawing() {
  $("target-error").textContent = "";
  if (!viewer.drawnVoxels()) {
    $("target-error").textContent = "nothing drawn yet: paint the target on a slice";
    return;
  }
  say("saving the drawn target…");
  try {
    const form = new FormData();
    form.append("drawing", new Blob([await viewer.drawingBytes()]), "drawing.nii");
    await newLabels(await postJson(`/api/cases/${state.case.id}/drawn-target`, form));
    setDrawing(false);
    say(`target: drawn, ${state.case.drawn_target.voxels} voxels`);
    // e.g. painted on one slice: the coarse preview may miss it
    if (state.case.drawn_target.warning) $("target-error").textContent = `Warning: ${state.case.drawn_target.warning}.`;
  } catch (error) {
    report("target-error", error);
    say("");
  }
}

async function discardDrawn() {
  $("target-error").textContent = "";
  try {
    await newLabels(await deleteJson(`/api/cases/${state.case.id}/drawn-target`));
    say("the drawn target discarded: the case's own labels again");
  } catch (error) {
    report("target-error", error);
  }
}

// The case with another label map (a drawing written in, or discarded): shown, then as
// any change of target.
async function newLabels(info) {
  const image = info.case.domain.image;
  const bytes = await getBytes(info.files.labels);
  await viewer.replaceLabels(bytes, /\.(nii(\.gz)?|nrrd|mha)$/i.test(image.labels) ? image.labels : "labels.nii.gz", info.label_names);
  viewer.setLabelOpacity(Number($("label-opacity").value));
  Object.assign(state.case, { case: info.case, label_names: info.label_names, drawn_target: info.drawn_target });
  targetChanged();
}

// The target's outline, as the server finds it (its label or sphere on the label
// map's grid), drawn over the image; none where the case has no target yet.
let targetSeq = 0;
async function showTargetOutline() {
  const seq = ++targetSeq;
  const info = state.case;
  let bytes = null; // none drawn where there is none, or it failed (not the old one)
  try {
    if (info.case.target && info.files.labels) bytes = await getBytes(`/api/cases/${info.id}/target-outline`);
  } catch (error) {
    report("target-error", error);
  }
  if (seq !== targetSeq || info !== state.case) return; // a newer one is on its way
  await viewer.showTarget(bytes, Number($("target-opacity").value)).catch((error) => report("target-error", error));
}

// --- probes --------------------------------------------------------------------

function renderProbes() {
  const list = $("probes");
  list.replaceChildren(
    ...state.probes.map((probe, i) => {
      const li = document.createElement("li");
      li.classList.toggle("selected", i === state.selected);
      li.dataset.index = i;
      const [r, g, b] = probeColour(i);
      const models = [...new Set([...probeModels, probe.model])];
      li.innerHTML = `
        <div class="head">
          <span class="swatch" style="background: rgb(${r},${g},${b})"></span>
          <span class="name"></span>
          <select class="model">${models.map((m) => `<option>${m}</option>`).join("")}</select>
        </div>
        <div class="coords"></div>
        <div class="row">
          <button class="set-tip">set tip</button>
          <button class="set-entry">set entry</button>
          <button class="remove" title="remove this probe">remove</button>
        </div>
        <div class="path"></div>
        <div class="problem"></div>`;
      li.querySelector(".name").textContent = probe.name || `p${i + 1}`;
      li.querySelector(".model").value = probe.model;
      li.querySelector(".coords").textContent =
        `tip ${probe.tip_mm.map(round1).join(", ")} · entry ${probe.entry_mm.map(round1).join(", ")}`;
      const placing = i === state.selected ? state.placing : null;
      li.querySelector(".set-tip").classList.toggle("active", placing === "tip");
      li.querySelector(".set-entry").classList.toggle("active", placing === "entry");
      const path = state.paths[i];
      if (path) {
        li.querySelector(".path").textContent =
          `depth ${fmt(path.depth_mm)} mm · ${fmt(path.angle_to_axial_plane_deg)}° to axial, ` +
          `${fmt(path.angle_in_axial_plane_deg)}° in it · ` +
          `nearest no-fly ${path.nearest_no_fly || "–"} at ${fmt(path.clearance_mm)} mm`;
        li.querySelector(".problem").textContent = path.problem || "";
      }
      return li;
    }),
  );
  $("canvas-box").classList.toggle("placing", !!state.placing);
  $("placing-hint").textContent = state.placing
    ? `Click a slice to place the ${state.placing} of ${state.probes[state.selected].name}.`
    : "Select a probe, then “set tip” or “set entry” and click a slice; or drag a tip or an entry on a slice.";
}

function onProbeListClick(event) {
  const li = event.target.closest("li");
  if (!li) return;
  const i = Number(li.dataset.index);
  const button = event.target.closest("button");
  if (event.target.closest("select")) return; // handled by "change"
  if (button && button.classList.contains("remove")) {
    state.probes.splice(i, 1);
    state.selected = Math.min(state.selected, Math.max(0, state.probes.length - 1));
    state.placing = null;
    probesChanged();
    return;
  }
  const wanted = button ? (button.classList.contains("set-tip") ? "tip" : "entry") : null;
  state.placing = wanted && !(state.selected === i && state.placing === wanted) ? wanted : null;
  if (state.selected !== i) {
    state.selected = i;
    viewer.setProbes(state.probes, state.selected);
  }
  renderProbes();
}

function onProbeModelChange(event) {
  const li = event.target.closest("li");
  state.probes[Number(li.dataset.index)].model = event.target.value;
  probesChanged();
}

function addProbe() {
  // At the crosshair (or the target), entering from straight in front (LPS -y):
  // a start the user then moves.
  const tip = (state.crosshair || targetCentre() || [0, 0, 0]).map(round1);
  const used = new Set(state.probes.map((p) => p.name));
  let n = state.probes.length + 1;
  while (used.has(`p${n}`)) n++;
  state.probes.push({ name: `p${n}`, model: "argon-17g", tip_mm: tip, entry_mm: [tip[0], round1(tip[1] - 120), tip[2]] });
  state.selected = state.probes.length - 1;
  state.placing = "tip";
  probesChanged();
}

// A click on a 2-D slice while placing: the crosshair is the new point.
function onLocation(where) {
  state.crosshair = where.lps;
  $("location").textContent = where.text;
  if (state.dragging) dragTo(where.lps);
  if (!state.placing || !(where.axCorSag >= 0 && where.axCorSag <= 2)) return;
  const probe = state.probes[state.selected];
  probe[state.placing === "tip" ? "tip_mm" : "entry_mm"] = where.lps.map(round1);
  state.placing = null;
  probesChanged();
}

// --- dragging a probe's end on a slice -----------------------------------------------

const GRAB_PX = { mouse: 8, pen: 8, touch: 24 }; // how near a drawn tip or entry a press must be to take it (a finger covers more)
const PATHS_EVERY_MS = 150; // while dragging, a paths request at most this often

// A press (mouse, pen or finger: pointer events) on a drawn tip or entry starts a drag,
// listened for before NiiVue's own mouse or touch handling, whose crosshair then follows the
// pointer and reports each position to onLocation.
function onPress(event) {
  if (!event.isPrimary || event.button !== 0 || state.placing || state.drawing || !state.case) return;
  const hit = endUnder(event);
  if (!hit) return;
  state.dragging = { ...hit, start: [...state.probes[hit.index][hit.key]], from: null, moved: false };
  state.selected = hit.index;
  $("canvas-box").classList.add("dragging");
  viewer.setProbes(state.probes, state.selected);
  renderProbes();
}

function endUnder(event) {
  const box = $("gl").getBoundingClientRect();
  const reach = GRAB_PX[event.pointerType] || GRAB_PX.mouse;
  return viewer.probeEndAt([event.clientX - box.left, event.clientY - box.top], state.probes, reach);
}

// The end follows the pointer within the slice's plane, from where it was taken: its
// coordinate across the slice stays (the probes are drawn projected onto every slice).
function dragTo(lps) {
  const drag = state.dragging;
  if (!drag.from) {
    drag.from = lps; // the press itself
    return;
  }
  const to = drag.start.map((v, axis) => (axis === drag.across ? v : round1(v + lps[axis] - drag.from[axis])));
  state.probes[drag.index][drag.key] = to;
  if (!drag.moved) jobs.probesMoving(); // the old placement's previews are of no use now
  drag.moved = true;
  viewer.setProbes(state.probes, state.selected);
  renderProbes();
  pathsWhileDragging();
}

// Released: saved, its path, then its preview, as a click does.
function onRelease() {
  const drag = state.dragging;
  if (!drag) return;
  state.dragging = null;
  $("canvas-box").classList.remove("dragging");
  if (drag.moved) probesChanged();
}

// The paths of the probes as they are dragged (nothing saved): one request at a time,
// at most every PATHS_EVERY_MS, the newest placement next.
let pathsBusy = false;
let pathsAgain = false;
async function pathsWhileDragging() {
  if (pathsBusy) {
    pathsAgain = true;
    return;
  }
  pathsBusy = true;
  const started = performance.now();
  await updatePaths();
  await new Promise((resolve) => setTimeout(resolve, PATHS_EVERY_MS - (performance.now() - started)));
  pathsBusy = false;
  if (pathsAgain) {
    pathsAgain = false;
    pathsWhileDragging();
  }
}

// Saving is chained, so that two quick edits reach the server in order.
let saving = Promise.resolve();
let pathsSeq = 0;

function probesChanged() {
  renderProbes();
  viewer.setProbes(state.probes, state.selected);
  const probes = state.probes.map((p) => ({ ...p }));
  const caseId = state.case.id;
  $("probes-error").textContent = "";
  jobs.probesMoving(); // stale previews are dropped now, not when the save returns
  saving = saving.then(async () => {
    try {
      // An empty list is "no probes" for the case file (null removes the key)
      const info = await putJson(`/api/cases/${caseId}`, { probes: probes.length ? probes : null });
      state.case.case = info.case;
      if (!state.dragging) jobs.probesSaved(probes.length > 0); // a drag previews when released
      updatePaths();
    } catch (error) {
      report("probes-error", error);
    }
  });
}

async function updatePaths() {
  const seq = ++pathsSeq;
  if (!state.probes.length) return;
  try {
    const result = await postJson(`/api/cases/${state.case.id}/paths`, { probes: state.probes });
    if (seq !== pathsSeq) return; // a newer request is on its way
    state.paths = result.paths || [];
    if (!result.paths) $("probes-error").textContent = "no paths: they need an image and a target";
    renderProbes();
  } catch (error) {
    if (seq === pathsSeq) report("probes-error", error);
  }
}

// --- start -----------------------------------------------------------------------

// The overlays' colours, from the viewer's own tables
function renderLegend() {
  const css = ([r, g, b]) => `rgb(${r},${g},${b})`;
  const minus = (v) => `${v}`.replace("-", "−");
  const entries = [
    ["fill", COLD_RGB, "cold ≤ 0 °C"],
    ["fill", LETHAL_RGB, "lethal zone"],
    ...ISOTHERMS.map((t) => ["line", t.rgb, `${minus(t.level_c)} °C isotherm`]),
    ["line", TARGET_RGB, "target outline"],
  ];
  $("legend").replaceChildren(
    ...entries.map(([kind, rgb, text]) => {
      const li = document.createElement("li");
      li.innerHTML = `<span class="key ${kind}" style="background: ${css(rgb)}"></span>`;
      li.append(text);
      return li;
    }),
  );
  // the ramp runs from the map's lowest shown probability to 1
  const low = PROBABILITY_STOPS[0][0];
  const stops = PROBABILITY_STOPS.map(([p, rgb]) => `${css(rgb)} ${Math.round((100 * (p - low)) / (1 - low))}%`);
  $("probability-ramp").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  $("probability-low").textContent = `${Math.round(100 * low)} %`;
}

async function main() {
  // What the page asks the server for is asked for at once, while NiiVue starts (its
  // WebGL set-up takes a second in a software-rendered browser): the lists, the probe
  // catalogue and, on a reload, the case and its volumes. Their failures are reported
  // where they are awaited, below.
  const reopen = location.hash.match(/case=([0-9a-f]{16})/);
  const reopening = reopen && getJson(`/api/cases/${reopen[1]}`);
  const reopenVolumes = reopening && reopening.then(fetchVolumes);
  const models = getJson("/api/probe-models");
  const lists = fillLists();
  for (const pending of [reopening, reopenVolumes, models, lists]) pending && pending.catch(() => {});
  viewer = new Viewer($("gl"), { onLocation });
  await viewer.init();
  probeModels = (await models).map((m) => m.name);
  jobs = new Jobs({
    say,
    viewer,
    previewDelayMs: PREVIEW_DELAY_MS,
    // A plan accepted (or one of its alternatives, by its row): the server copies its
    // probes and protocol into the case
    async acceptPlan(jobId, alternative = null) {
      const info = await postJson(`/api/cases/${state.case.id}/accept-plan`, { job: jobId, alternative });
      state.case.case = info.case;
      state.probes = info.case.probes || [];
      state.selected = 0;
      state.placing = null;
      probesChanged();
    },
    // "worst point" and similar: the crosshair to an LPS position
    moveTo: (lps) => viewer.moveTo(lps),
  });

  $("window").replaceChildren(...Object.keys(WINDOWS).map((w) => new Option(w, w)));
  $("window").onchange = () => viewer.setWindow($("window").value);
  $("layout").onchange = () => viewer.setLayout($("layout").value);
  $("label-opacity").oninput = (e) => viewer.setLabelOpacity(Number(e.target.value));
  for (const overlay of ["cold", "lethal", "isotherms", "target", "probability"]) {
    $(`${overlay}-opacity`).oninput = (e) => viewer.setOverlayOpacity(overlay, Number(e.target.value));
  }
  renderLegend();
  $("to-target").onclick = goToTarget;
  $("target-from-label").onclick = () => state.case && setTarget({ label: $("target-label").value });
  $("target-sphere").onclick = () =>
    state.case &&
    setTarget({ sphere: { centre_mm: (state.crosshair || targetCentre() || [0, 0, 0]).map(round1), diameter_mm: Number($("lesion-diameter").value) } });
  $("draw-start").onclick = () => state.case && setDrawing(true);
  $("draw-cancel").onclick = () => setDrawing(false);
  $("draw-clear").onclick = () => viewer.clearDrawing();
  $("draw-use").onclick = useDrawing;
  $("draw-discard").onclick = () => state.case && discardDrawn();
  for (const id of ["pen-size", "pen-erase", "pen-fill"]) $(id).onchange = () => state.drawing && viewer.setPen(pen());
  $("margin").onchange = async () => {
    if (!state.case) return;
    try {
      const info = await putJson(`/api/cases/${state.case.id}`, { margin_mm: Number($("margin").value) });
      state.case.case = info.case;
      renderTarget();
    } catch (error) {
      report("target-error", error);
    }
  };
  $("open-example").onclick = () =>
    openCase(() => postJson(`/api/cases/example/${encodeURIComponent($("examples").value)}`));
  $("open-case").onclick = () => openCase(() => getJson(`/api/cases/${$("cases").value}`));
  $("upload").onsubmit = (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    // an empty file input would be sent as an empty part: leave it out
    if (!form.get("image") || !form.get("image").name) form.delete("image");
    openCase(() => postJson("/api/cases", form));
  };
  // probe ends dragged on the slices: the press is seen before NiiVue's (capture; a pointer
  // event comes before the mouse or touch event it is made from)
  $("canvas-box").addEventListener("pointerdown", onPress, true);
  window.addEventListener("pointerup", onRelease);
  window.addEventListener("pointercancel", onRelease);
  $("canvas-box").addEventListener("pointermove", (event) => {
    if (!event.buttons) $("canvas-box").classList.toggle("over-end", !state.placing && !state.drawing && !!endUnder(event));
  });
  $("probes").addEventListener("click", onProbeListClick);
  $("probes").addEventListener("change", onProbeModelChange);
  $("add-probe").onclick = () => state.case && addProbe();
  // probes from a Slicer Markups file: its lines (tip, entry), each keeping its model by name
  $("markups-in").onsubmit = async (event) => {
    event.preventDefault();
    if (!state.case) return;
    $("probes-error").textContent = "";
    try {
      const info = await postJson(`/api/cases/${state.case.id}/markups`, new FormData(event.target));
      state.case.case = info.case;
      state.probes = (info.case.probes || []).map((p) => ({ ...p }));
      state.selected = 0;
      state.placing = null;
      probesChanged();
    } catch (error) {
      report("probes-error", error);
    }
  };
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.placing) {
      state.placing = null;
      renderProbes();
    }
  });

  // for the tests and the console: NiiVue (`viewer.nv`) and the state
  window.cryoplanApp = { viewer, state, jobs };
  await lists;
  if (reopen) await openCase(() => reopening, reopenVolumes);
  document.body.dataset.ready = "1"; // for the tests: the page is wired up
  document.body.dataset.readyAt = performance.now().toFixed(0); // for the benchmark
}

main().catch((error) => report(null, error));
