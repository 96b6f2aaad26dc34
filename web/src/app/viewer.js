// The application's view: NiiVue with the case's image, its label map, the
// simulated cold (Tmin) and lethal zone, and the probes as thin cylinders, in
// three 2-D slices and a 3-D render (multiplanar).
//
// Positions: the API speaks LPS millimetres (DICOM, case files); NiiVue's
// world is the NIfTI RAS millimetres of the sform. The two differ by the sign
// of x and y, and nothing else: `lpsToRas`/`rasToLps` below are the only
// places that convert.

import { MULTIPLANAR_TYPE, Niivue, NVImage, NVMesh, SHOW_RENDER, SLICE_TYPE } from "@niivue/niivue";

export const lpsToRas = ([x, y, z]) => [-x, -y, z];
export const rasToLps = ([x, y, z]) => [-x, -y, z];
// The LPS axis across each 2-D tile (axial, coronal, sagittal): z, y, x
const ACROSS_SLICE = [2, 1, 0];

// NiiVue's ImageType enum (not exported): we pass it explicitly, because our
// volumes arrive from URLs without a file extension for NiiVue to guess from.
const IMAGE_TYPES = [
  [".nii.gz", 1],
  [".nii", 1],
  [".nrrd", 7],
  [".mha", 9],
];

function imageType(name) {
  const lower = (name || "").toLowerCase();
  const found = IMAGE_TYPES.find(([suffix]) => lower.endsWith(suffix));
  return found ? found[1] : 1;
}

// Window/level presets: [level, width] in HU; null = the image's robust range
// (2nd-98th percentile, which NiiVue computes on load): right for MRI, whose
// intensities have no absolute scale.
export const WINDOWS = {
  "CT soft tissue": [40, 400],
  "CT liver": [60, 160],
  "CT bone": [400, 1800],
  "MRI / auto": null,
};

// Tmin colour map: the cold is blue, deeper the colder; at and above 0 °C
// nothing. NiiVue makes values below cal_min transparent but saturates those
// above cal_max to the last colour, so the last entry (index 255, reached by
// every value >= cal_max = 0 °C) has alpha 0.
// Every entry is a saturated blue, so the cold stays visible over dark
// tissue as over bright (2-D overlays are all-or-nothing per voxel in NiiVue,
// times the layer's opacity: only an alpha of 0 counts).
const COLD = {
  R: [60, 40, 110, 0],
  G: [60, 140, 190, 0],
  B: [255, 255, 255, 0],
  A: [255, 255, 255, 0],
  I: [0, 128, 254, 255],
};
export const COLD_RGB = [COLD.R[1], COLD.G[1], COLD.B[1]]; // for the legend
const COLDEST_C = -200; // below any cryoprobe's gas: the map's lower end
const LETHAL = { R: [0, 255, 255], G: [0, 60, 60], B: [0, 40, 40], A: [0, 255, 255], I: [0, 1, 255] };
export const LETHAL_RGB = [LETHAL.R[1], LETHAL.G[1], LETHAL.B[1]];

// Lines drawn from the server's label maps (GET /api/jobs/{id}/isotherms: label k on
// ISOTHERMS[k - 1]; GET /api/cases/{id}/target-outline: label 1), each a colour unlike
// the grey image, the blue cold, the probes and the green crosshair.
export const ISOTHERMS = [
  { level_c: 0, rgb: [255, 255, 255] },
  { level_c: -20, rgb: [255, 176, 0] },
  { level_c: -40, rgb: [255, 40, 40] },
];
export const TARGET_RGB = [170, 90, 255];

// The planner's lethal probability (0-1): nothing up to 5 %, then viridis's upper half
// (teal, green, yellow: unlike the blue cold, the red lethal zone and the violet target).
// Values at or below cal_min land on texel 0, so that one is transparent (values just
// above are lifted to texel 2 by NiiVue); 1 is cal_max, the last colour.
export const PROBABILITY_STOPS = [
  [0.05, [33, 145, 140]],
  [0.5, [94, 201, 98]],
  [1, [253, 231, 37]],
];
const PROBABILITY_MIN = PROBABILITY_STOPS[0][0];
const PROBABILITY = {
  R: [0, ...PROBABILITY_STOPS.map(([, c]) => c[0])],
  G: [0, ...PROBABILITY_STOPS.map(([, c]) => c[1])],
  B: [0, ...PROBABILITY_STOPS.map(([, c]) => c[2])],
  A: [0, 255, 255, 255],
  I: [0, 1, 128, 255],
};

// A colour map giving the values 1..n of a line volume (shown with cal_min 0, cal_max n)
// each its colour, 0 transparent. Value k lands on texel 255 k / n; its colour fills the
// texels halfway to its neighbours'. Not a label colour table: NiiVue's label shader
// averages each voxel's alpha with its six neighbours', which leaves a one-voxel line at
// half its opacity.
function stepColormap(colours) {
  const n = colours.length;
  const map = { R: [0], G: [0], B: [0], A: [0], I: [0] };
  colours.forEach(([r, g, b], k) => {
    const first = k === 0 ? 1 : Math.floor((255 * (k + 0.5)) / n) + 1;
    const last = k === n - 1 ? 255 : Math.floor((255 * (k + 1.5)) / n);
    for (const texel of first === last ? [first] : [first, last]) {
      map.R.push(r);
      map.G.push(g);
      map.B.push(b);
      map.A.push(255);
      map.I.push(texel);
    }
  });
  return map;
}

// Distinct colours for the label map (golden-angle hues), and for probes.
function labelColour(i) {
  const h = (i * 137.508) % 360;
  const f = (n) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (0.55 - 0.45 * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}
const PROBE_COLOURS = [
  [255, 220, 0],
  [0, 230, 255],
  [255, 120, 255],
  [120, 255, 120],
  [255, 150, 60],
  [150, 150, 255],
];
export const probeColour = (i) => PROBE_COLOURS[i % PROBE_COLOURS.length];

async function volumeFromBytes(bytes, name, options = {}) {
  // NVImage.new, not loadFromBase64/loadFromUrl: it reports the real parse
  // error (see view3d.js), and it takes the file type from us.
  return NVImage.new(
    bytes,
    name,
    options.colormap || "gray",
    options.opacity ?? 1,
    null,
    options.cal_min ?? NaN,
    options.cal_max ?? NaN,
    true,
    0.02,
    false,
    false, // prefer the sform, as nibabel and cryoplan do
    "",
    0,
    imageType(name),
    NaN,
    NaN,
    false,
    null,
    0,
    null,
  );
}

// A line volume (values 0..n) in the step colour map `colormap` of n colours.
const lineVolume = (bytes, name, colormap, n, opacity) => volumeFromBytes(bytes, name, { colormap, cal_min: 0, cal_max: n, opacity });

// A closed cylinder from a to b (RAS mm), counter-clockwise seen from outside
// (NiiVue culls back faces and lights by the winding).
function cylinder(a, b, radius, sides = 12) {
  const axis = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
  const length = Math.hypot(...axis) || 1;
  const w = axis.map((v) => v / length);
  // two unit vectors across the axis
  const helper = Math.abs(w[0]) < 0.9 ? [1, 0, 0] : [0, 1, 0];
  const cross = (p, q) => [p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0]];
  const u0 = cross(w, helper);
  const un = Math.hypot(...u0);
  const u = u0.map((v) => v / un);
  const v = cross(w, u);
  const pts = [];
  for (const end of [a, b]) {
    for (let k = 0; k < sides; k++) {
      const t = (2 * Math.PI * k) / sides;
      const c = Math.cos(t) * radius;
      const s = Math.sin(t) * radius;
      pts.push(end[0] + c * u[0] + s * v[0], end[1] + c * u[1] + s * v[1], end[2] + c * u[2] + s * v[2]);
    }
  }
  pts.push(...a, ...b); // the caps' centres: 2*sides, 2*sides+1
  const tris = [];
  const ca = 2 * sides;
  const cb = ca + 1;
  for (let k = 0; k < sides; k++) {
    const k1 = (k + 1) % sides;
    // u, v, w is right-handed, so (u -> v) turns counter-clockwise seen from
    // +w: the side faces below face outwards, the caps face -w and +w.
    tris.push(k, k1, sides + k1, k, sides + k1, sides + k);
    tris.push(ca, k1, k);
    tris.push(cb, sides + k, sides + k1);
  }
  return { pts: new Float32Array(pts), tris: new Uint32Array(tris) };
}

export class Viewer {
  constructor(canvas, { onLocation } = {}) {
    this.canvas = canvas;
    this.onLocation = onLocation || (() => {});
    this.image = null; // NVImage, the background
    this.labels = null; // NVImage overlay
    this.labelNames = {};
    this.tmin = null;
    this.lethal = null;
    this.isotherms = null; // label map: the isotherms' lines
    this.target = null; // label map: the target's outline
    this.probability = null; // the planner's lethal probability
    this.probeMeshes = [];
  }

  async init() {
    this.nv = new Niivue({
      backColor: [0.08, 0.08, 0.1, 1],
      show3Dcrosshair: true,
      isOrientCube: false,
      dragAndDropEnabled: false, // a stray drop must not replace the case's image
      multiplanarShowRender: SHOW_RENDER.ALWAYS,
      // 2 x 2 whatever the canvas's shape: a flat abdominal slab would
      // otherwise get thin coronal and sagittal strips
      multiplanarLayout: MULTIPLANAR_TYPE.GRID,
      // The probes in every 2-D slice, whole (projected), so a probe that
      // leaves the slice is still seen; the crosshair tells the depth.
      meshThicknessOn2D: Infinity,
      // A CT's volume rendering is an opaque body: the meshes inside (probes)
      // show through it faintly, and the cut-away below opens it.
      meshXRay: 0.4,
      isColorbar: false,
      // CT and MRI as radiologists read them: the patient's right on the
      // screen's left, the nose to the left in sagittal slices
      isRadiologicalConvention: true,
      sagittalNoseLeft: true,
      logLevel: "warn",
      loadingText: "",
      crosshairColor: [0.2, 1, 0.3, 1],
      clipPlaneColor: [0, 0, 0, 0], // the cut-away alone, not NiiVue's magenta plane
    });
    await this.nv.attachToCanvas(this.canvas);
    this.nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
    this.nv.addColormap("cryoplan_cold", COLD);
    this.nv.addColormap("cryoplan_lethal", LETHAL);
    this.nv.addColormap("cryoplan_probability", PROBABILITY);
    this.nv.addColormap("cryoplan_isotherms", stepColormap(ISOTHERMS.map((t) => t.rgb)));
    this.nv.addColormap("cryoplan_target", stepColormap([TARGET_RGB]));
    this.nv.onLocationChange = (loc) => this.onLocation(this.describeLocation(loc), loc);
  }

  // What is under the crosshair, in the case's terms (LPS, HU, label name, Tmin).
  describeLocation(loc) {
    const lps = rasToLps(loc.mm);
    const out = { lps, axCorSag: loc.axCorSag, text: `LPS ${lps.map((v) => v.toFixed(1)).join(", ")} mm` };
    const value = (vol) => {
      if (!vol) return null;
      const found = loc.values.find((v) => v.id === vol.id);
      return found ? found.value : null;
    };
    const hu = value(this.image);
    if (hu !== null && this.image !== this.labels) out.text += ` · ${Math.round(hu)}`;
    const label = value(this.labels);
    if (label !== null) {
      const v = Math.round(label);
      out.text += ` · ${v === 0 ? "unlabelled" : this.labelNames[v] || `label ${v}`}`;
    }
    const tmin = value(this.tmin);
    if (tmin !== null) out.text += ` · Tmin ${tmin.toFixed(0)} °C`;
    return out;
  }

  // The case: its image (or, without one, the label map alone) and labels, its probes, and
  // the crosshair on `centre` (LPS; the volume's centre without one). All is set first, then
  // uploaded and drawn once: each of NiiVue's setters (a window, an opacity, a mesh added)
  // uploads every volume again, a few tenths of a second in a software-rendered browser.
  async showCase({ imageBytes, imageName, labelsBytes, labelsName, labelNames, labelOpacity = 0.3, centre, probes = [], selected = 0 }) {
    this.image = this.labels = this.tmin = this.lethal = this.isotherms = this.target = this.probability = null;
    this.labelNames = labelNames || {};
    // read together: NiiVue decompresses with the browser's DecompressionStream (async)
    const [image, labels] = await Promise.all([
      imageBytes && volumeFromBytes(imageBytes, imageName),
      labelsBytes && volumeFromBytes(labelsBytes, labelsName, { opacity: imageBytes ? labelOpacity : 1 }),
    ]);
    this.image = image || labels || null;
    this.labels = labels || null;
    if (this.labels) this.labels.setColormapLabel(this.labelLut());
    this.windowTo(this.looksLikeCt() ? "CT soft tissue" : "MRI / auto");
    this.placeProbes(probes, selected);
    this.restack();
    this.centreView(centre || undefined); // draws, as NiiVue's setters do: cheap, no upload
  }

  labelLut() {
    const values = Object.keys(this.labelNames)
      .map(Number)
      .sort((a, b) => a - b);
    // Trap: NiiVue's overlay shader (issue1139 in its source) lifts any value
    // above the map's lower end to at least 2/256 of the colour texture. With
    // a label map starting at 0 that texture is ~120 texels wide, so 0 lands
    // near texel 1 and all unlabelled space takes label 1's colour, faintly.
    // Two transparent entries below 0 keep 0 on a transparent texel.
    const lut = { R: [0, 0, 0], G: [0, 0, 0], B: [0, 0, 0], A: [0, 0, 0], I: [-2, -1, 0], labels: ["", "", "unlabelled"] };
    values.forEach((v, i) => {
      const [r, g, b] = labelColour(i);
      lut.R.push(r);
      lut.G.push(g);
      lut.B.push(b);
      lut.A.push(255);
      lut.I.push(v);
      lut.labels.push(this.labelNames[v]);
    });
    return lut;
  }

  looksLikeCt() {
    return this.image && this.image !== this.labels && this.image.global_min < -500;
  }

  setWindow(preset) {
    if (this.windowTo(preset)) this.nv.updateGLVolume();
  }

  // The image's window set, not yet uploaded; false where there is no image to window.
  windowTo(preset) {
    const vol = this.image;
    if (!vol || vol === this.labels) return false;
    const lw = WINDOWS[preset];
    if (lw) {
      vol.cal_min = lw[0] - lw[1] / 2;
      vol.cal_max = lw[0] + lw[1] / 2;
    } else {
      vol.cal_min = vol.robust_min;
      vol.cal_max = vol.robust_max;
    }
    return true;
  }

  // "multiplanar", "axial", "coronal", "sagittal" or "render"
  setLayout(name) {
    this.nv.setSliceType(SLICE_TYPE[name.toUpperCase()] ?? SLICE_TYPE.MULTIPLANAR);
  }

  setLabelOpacity(opacity) {
    if (this.labels && this.labels !== this.image) {
      this.labels.opacity = opacity;
      this.nv.updateGLVolume();
    }
  }

  // The crosshair on the target or, without one, the volume's centre; the 3-D
  // view from the patient's front-right, cut open in front of the crosshair.
  centreView(lps) {
    if (lps) this.moveTo(lps);
    else this.moveToFrac([0.5, 0.5, 0.5]);
    this.nv.setRenderAzimuthElevation(120, 20);
    this.nv.setClipPlane([0.1, 180, 0]);
  }

  moveTo(lps) {
    this.moveToFrac(this.nv.mm2frac(lpsToRas(lps)));
  }

  // (NiiVue's own setters for the crosshair do not report the new location.)
  moveToFrac(frac) {
    this.nv.scene.crosshairPos = frac;
    this.nv.createOnLocationChange();
    this.nv.drawScene();
  }

  // Where an LPS point is drawn in a 2-D tile (0 axial, 1 coronal, 2 sagittal),
  // in CSS pixels from the canvas's top left; null if not on screen. For tests.
  screenPoint(lps, sliceType = 0) {
    const found = this.nv.frac2canvasPosWithTile(this.nv.mm2frac(lpsToRas(lps)), sliceType);
    if (!found) return null;
    const scale = this.canvas.width / this.canvas.clientWidth; // NiiVue draws in device pixels
    return [found.pos[0] / scale, found.pos[1] / scale];
  }

  // Where a probe's end is drawn in a 2-D tile (CSS pixels, or null): the probes are
  // drawn whole in every slice, projected onto it, so the point is moved onto the tile's
  // slice (the crosshair's) across it first.
  drawnPoint(lps, axCorSag) {
    const crosshair = rasToLps(this.nv.frac2mm(this.nv.scene.crosshairPos));
    const across = ACROSS_SLICE[axCorSag];
    return this.screenPoint(
      lps.map((v, axis) => (axis === across ? crosshair[axis] : v)),
      axCorSag,
    );
  }

  // The probe end drawn nearest a canvas point (CSS pixels) in a 2-D tile, within
  // radiusPx: {index, key: "tip_mm" | "entry_mm", axCorSag, across}, or null.
  probeEndAt([x, y], probes, radiusPx) {
    let best = null;
    for (const axCorSag of [0, 1, 2]) {
      probes.forEach((probe, index) => {
        for (const key of ["tip_mm", "entry_mm"]) {
          const at = this.drawnPoint(probe[key], axCorSag);
          const distance = at ? Math.hypot(at[0] - x, at[1] - y) : Infinity;
          if (distance <= radiusPx && !(best && best.distance <= distance)) {
            best = { index, key, axCorSag, across: ACROSS_SLICE[axCorSag], distance };
          }
        }
      });
    }
    return best;
  }

  // A result on the image's grid: Tmin (°C), the lethal zone (0/1) and the isotherms' lines,
  // read first and swapped in at once (two results arriving together leave one on screen).
  async showResult({ tminBytes, lethalBytes, isothermBytes, opacity }) {
    const [tmin, lethal, isotherms] = await Promise.all([
      tminBytes &&
        volumeFromBytes(tminBytes, "tmin_on_image.nii.gz", { colormap: "cryoplan_cold", cal_min: COLDEST_C, cal_max: 0, opacity: opacity.cold }),
      lethalBytes &&
        volumeFromBytes(lethalBytes, "lethal_on_image.nii.gz", { colormap: "cryoplan_lethal", cal_min: 0.5, cal_max: 1, opacity: opacity.lethal }),
      isothermBytes && lineVolume(isothermBytes, "isotherms.nii.gz", "cryoplan_isotherms", ISOTHERMS.length, opacity.isotherms),
    ]);
    Object.assign(this, { tmin, lethal, isotherms });
    this.restack();
  }

  clearResult() {
    this.tmin = this.lethal = this.isotherms = null;
    this.restack();
  }

  // The target's outline (a label map, 1 on the outline), or none (null); the last call wins.
  async showTarget(bytes, opacity) {
    const call = (this.targetCall = {});
    const fresh = bytes && (await lineVolume(bytes, "target-outline.nii.gz", "cryoplan_target", 1, opacity));
    if (call !== this.targetCall) return; // a newer outline is being read
    this.target = fresh || null;
    this.restack();
  }

  // The planner's lethal probability (0-1 on the image's grid), or none (null).
  async showProbability(bytes, opacity) {
    const fresh =
      bytes &&
      (await volumeFromBytes(bytes, "lethal_probability_on_image.nii.gz", {
        colormap: "cryoplan_probability",
        cal_min: PROBABILITY_MIN,
        cal_max: 1,
        opacity,
      }));
    this.probability = fresh || null;
    this.restack();
  }

  // The scene's volumes, in the order NiiVue blends them: the image, its labels, the
  // result's fills, the plan's probability (shown after a plan, which is then what the
  // user looks at), the lines last. Set as one list and drawn once: NiiVue's addVolume and
  // removeVolume each redraw every volume's textures (seconds for a few of them in a
  // software-rendered browser); its setVolume sets these same three fields.
  // A new label map for the case (a drawn target written into it): the image stays.
  async replaceLabels(bytes, name, labelNames) {
    const alone = this.image === this.labels; // no image: the label map is the background
    this.labelNames = labelNames || {};
    const opacity = this.labels ? this.labels.opacity : 1;
    this.labels = await volumeFromBytes(bytes, name, { opacity });
    this.labels.setColormapLabel(this.labelLut());
    if (alone) this.image = this.labels;
    this.restack();
  }

  // --- a target drawn by hand: NiiVue's pen on the background volume's voxels ---------
  // The drawing is a bitmap on the background's grid (the image's, which a case's label
  // map shares), so NiiVue saves it as a NIfTI file with the image's header: the server
  // checks it against the label map's grid.

  startDrawing(pen) {
    this.nv.setDrawingEnabled(true);
    this.nv.setDrawOpacity(0.6);
    this.setPen(pen);
  }

  // size: the brush's width in voxels (NiiVue's square brush, in the slice drawn on);
  // erase: pen value 0; fill: a closed stroke is filled when the button is released
  setPen({ size, erase, fill }) {
    this.nv.opts.penSize = Math.max(1, Math.round(size));
    this.nv.setPenValue(erase ? 0 : 1, !erase && fill);
  }

  clearDrawing() {
    this.nv.createEmptyDrawing();
  }

  stopDrawing() {
    this.nv.setDrawingEnabled(false);
    this.nv.closeDrawing();
  }

  drawnVoxels() {
    const bitmap = this.nv.drawBitmap;
    let n = 0;
    if (bitmap) for (let i = 0; i < bitmap.length; i++) if (bitmap[i]) n++;
    return n;
  }

  // The drawing as an uncompressed NIfTI file on the background's grid (0 and 1), or null.
  async drawingBytes() {
    if (!this.nv.drawBitmap) return null;
    const bytes = await this.nv.saveImage({ filename: "", isSaveDrawing: true });
    return bytes || null;
  }

  restack(upload = true) {
    const order = [this.image, this.labels, this.tmin, this.lethal, this.probability, this.isotherms, this.target];
    const volumes = order.filter((vol, i) => vol && order.indexOf(vol) === i);
    Object.assign(this.nv, { volumes, back: volumes[0] || null, overlays: volumes.slice(1) });
    if (upload) this.nv.updateGLVolume();
  }

  // which: "cold", "lethal", "isotherms", "target" or "probability"
  setOverlayOpacity(which, opacity) {
    const vol = { cold: this.tmin, lethal: this.lethal, isotherms: this.isotherms, target: this.target, probability: this.probability }[which];
    if (vol) {
      vol.opacity = opacity;
      this.nv.updateGLVolume();
    }
  }

  // Probes: [{tip_mm, entry_mm}] in LPS. The selected one is drawn thicker.
  setProbes(probes, selected) {
    const shapes = probes.map((p, i) => p.tip_mm && p.entry_mm && cylinder(lpsToRas(p.entry_mm), lpsToRas(p.tip_mm), i === selected ? 1.6 : 1.0));
    if (shapes.every(Boolean) && shapes.length === this.probeMeshes.length) {
      // the same probes moved (a drag): their vertices replaced in place, because NiiVue
      // redraws every volume's textures when a mesh is added or removed
      shapes.forEach(({ pts }, i) => {
        this.probeMeshes[i].pts = pts;
        this.probeMeshes[i].updateMesh(this.nv.gl);
      });
      this.nv.drawScene();
      return;
    }
    this.placeProbes(probes, selected, shapes);
    this.nv.updateGLVolume();
  }

  // The probes' meshes replaced, not yet drawn. NiiVue's addMesh and removeMesh each upload
  // every volume again and draw (updateGLVolume): the list is set whole here, and the caller
  // uploads once (updateGLVolume also takes the meshes' extent into the 3-D view's zoom).
  placeProbes(probes, selected, shapes = null) {
    shapes = shapes || probes.map((p, i) => p.tip_mm && p.entry_mm && cylinder(lpsToRas(p.entry_mm), lpsToRas(p.tip_mm), i === selected ? 1.6 : 1.0));
    for (const mesh of this.probeMeshes) mesh.unloadMesh(this.nv.gl);
    const others = this.nv.meshes.filter((mesh) => !this.probeMeshes.includes(mesh));
    this.probeMeshes = shapes.flatMap((shape, i) => {
      if (!shape) return [];
      // Trap: a first alpha of 0 makes NVMesh a tractogram; alpha is unused.
      const rgba = new Uint8Array([...probeColour(i), 255]);
      return [new NVMesh(shape.pts, shape.tris, `probe ${probes[i].name || i + 1}`, rgba, 1, true, this.nv.gl)];
    });
    this.nv.meshes = [...others, ...this.probeMeshes];
  }
}
