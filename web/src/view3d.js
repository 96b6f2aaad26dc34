// cryoplan 3-D viewer: a thin wrapper around NiiVue (WebGL2).
//
// Built by web/build.mjs into ONE self-contained IIFE script that the Python
// report inlines into a <script> tag, so it must run from file:// with no
// server and no network: every input arrives base64-encoded in the payload,
// and NiiVue's own defaults (font atlas, matcap) are embedded as data: URLs.
//
// Public interface (kept generic so the browser application can reuse it):
//   window.CryoplanView.show(canvas, payload, options?) -> Promise<Niivue>
// See web/README.md for the payload format.

import { Niivue, NVImage, NVMesh } from "@niivue/niivue";

// NiiVue's ImageType.NII. The enum is not exported; we pass it explicitly so
// a volume whose name lacks ".nii"/".nii.gz" is still read as NIfTI (NiiVue
// otherwise guesses the format from the name's extension).
const IMAGE_TYPE_NII = 1;

// Decode base64 into a fresh, 0-offset ArrayBuffer (so Float32Array and
// Uint32Array views over it are always aligned).
function b64ToBytes(b64) {
  if (typeof Uint8Array.fromBase64 === "function") {
    return Uint8Array.fromBase64(b64); // native, fast (recent browsers)
  }
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

// Typed-array views read in platform byte order; the payload is
// little-endian, which is what every browser platform in practice is.
function b64ToTyped(b64, Type, what) {
  const bytes = b64ToBytes(b64);
  if (bytes.byteLength % Type.BYTES_PER_ELEMENT !== 0) {
    throw new Error(`${what}: ${bytes.byteLength} bytes is not a whole number of ${Type.name} values`);
  }
  return new Type(bytes.buffer, 0, bytes.byteLength / Type.BYTES_PER_ELEMENT);
}

function num(v, fallback) {
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}

async function makeVolume(v, i) {
  const name = v.name || `volume${i}.nii.gz`;
  if (!v.data_b64) throw new Error(`volume ${name}: no data_b64`);
  const bytes = b64ToBytes(v.data_b64);
  // NVImage.new rather than NVImage.loadFromBase64: the latter swallows the
  // parse error and only says "could not load NVImage". Gzip is inflated by
  // nifti-reader-js with the browser's DecompressionStream (no fetch, no worker).
  // World (mm) space = RAS mm of the sform, as nibabel's img.affine; NiiVue
  // switches to the qform only if qform_code > sform_code (nibabel writes
  // sform_code 2, qform_code 0) or the sform is degenerate.
  return NVImage.new(
    bytes.buffer,
    name,
    v.colormap || "gray",
    num(v.opacity, 1),
    null, // paired image data (not used for .nii)
    num(v.cal_min, NaN), // NaN = NiiVue picks a robust range
    num(v.cal_max, NaN),
    true, // trustCalMinMax
    0.02, // percentileFrac (robust range when cal_min/max are not given)
    false, // ignoreZeroVoxels
    false, // useQFormNotSForm: prefer the sform, as nibabel does
    "", // colormapNegative
    0, // frame4D
    IMAGE_TYPE_NII,
    NaN, // cal_minNeg
    NaN, // cal_maxNeg
    false, // colorbarVisible
    null, // colormapLabel
    0, // colormapType
    null, // zarrData
  );
}

function makeMesh(m, i, gl) {
  const name = m.name || `mesh${i}`;
  const pts = b64ToTyped(m.positions_b64, Float32Array, `mesh ${name} positions`);
  const tris = b64ToTyped(m.indices_b64, Uint32Array, `mesh ${name} indices`);
  const nvert = pts.length / 3;
  if (pts.length % 3 !== 0 || tris.length % 3 !== 0 || nvert < 1) {
    throw new Error(`mesh ${name}: positions/indices are not whole xyz/triangles`);
  }
  for (let k = 0; k < tris.length; k++) {
    if (tris[k] >= nvert) throw new Error(`mesh ${name}: index ${tris[k]} >= ${nvert} vertices`);
  }
  // NiiVue takes ONE rgba255 array: length 4 = one colour for the mesh,
  // length 4*nvert = per-vertex colours (NVMesh.generatePosNormClr decides by
  // the length). Per-vertex alpha is ignored by the shaders; transparency is
  // the mesh-wide `opacity`.
  let rgba;
  if (m.colors_b64) {
    rgba = b64ToBytes(m.colors_b64);
    if (rgba.length !== 4 * nvert) {
      throw new Error(`mesh ${name}: colors_b64 has ${rgba.length} bytes, expected ${4 * nvert}`);
    }
  } else {
    const c = m.rgba || [255, 255, 255, 255];
    rgba = new Uint8Array([c[0], c[1], c[2], c.length > 3 ? c[3] : 255]);
  }
  // Trap: NVMesh treats a mesh whose first alpha is 0 as a tractogram
  // (lines, not triangles). Alpha is otherwise unused, so force it to 255.
  for (let k = 3; k < rgba.length; k += 4) rgba[k] = 255;
  // Triangles must be counter-clockwise seen from outside: NiiVue culls
  // back faces and derives the lighting normals from the winding.
  return new NVMesh(pts, tris, name, rgba, num(m.opacity, 1), m.visible !== false, gl);
}

async function show(canvas, payload, options = {}) {
  try {
    if (!(canvas instanceof HTMLCanvasElement)) throw new Error("show(): first argument must be a <canvas>");
    if (!canvas.parentElement) throw new Error("show(): the canvas must be in the document (NiiVue sizes it to its parent)");
    payload = payload || {};
    const volumes = payload.volumes || [];
    const meshes = payload.meshes || [];
    const view = payload.view || {};
    if (volumes.length === 0 && meshes.length === 0) throw new Error("payload has no volumes and no meshes");

    if (options.preserveDrawingBuffer) {
      // NiiVue creates its WebGL2 context without preserveDrawingBuffer, so
      // canvas.toDataURL()/readPixels() after the frame is composited return
      // blank. Creating the context first with the flag makes NiiVue's own
      // getContext() call return this one. (Screenshots don't need this.)
      canvas.getContext("webgl2", { alpha: true, antialias: false, preserveDrawingBuffer: true });
    }
    const nv = new Niivue({
      backColor: [0, 0, 0, 1],
      show3Dcrosshair: false,
      isOrientCube: false,
      // NiiVue paints the clip plane itself in translucent magenta; in a
      // report the cut-away alone is wanted, so the plane is invisible.
      clipPlaneColor: [0, 0, 0, 0],
      dragAndDropEnabled: false, // a report must not be changed by a stray file drop
      logLevel: "warn",
      loadingText: "",
      ...(options.niivue || {}),
    });
    // Render view only: left-drag rotates, wheel zooms.
    nv.opts.sliceType = nv.sliceTypeRender;
    await nv.attachToCanvas(canvas, options.antiAlias ?? null);

    // First volume = background, the rest = overlays (NiiVue's order).
    // With no volume at all NiiVue still draws meshes alone in 3-D
    // (drawSceneCore's mesh-only branch), so nothing is faked here.
    for (let i = 0; i < volumes.length; i++) {
      nv.addVolume(await makeVolume(volumes[i], i));
    }
    // Meshes are in world mm (RAS), the same space as the volume's sform,
    // so they need no transform.
    for (let i = 0; i < meshes.length; i++) {
      nv.addMesh(makeMesh(meshes[i], i, nv.gl));
    }

    // Draw meshes (faintly) through an opaque volume rendering, 0..1.
    if (typeof view.mesh_xray === "number") nv.opts.meshXRay = view.mesh_xray;
    // [depth, azimuth, elevation] cut-away of the volume rendering.
    if (Array.isArray(view.clip_plane)) nv.setClipPlane(view.clip_plane);
    nv.setSliceType(nv.sliceTypeRender);
    nv.setRenderAzimuthElevation(num(view.azimuth, 110), num(view.elevation, 15));
    nv.drawScene();

    // NiiVue draws synchronously (and calls gl.finish()); wait one animation
    // frame so the frame has also reached the page before saying "ready".
    await new Promise((resolve) => requestAnimationFrame(() => resolve()));
    canvas.dataset.ready = "1";
    return nv;
  } catch (err) {
    const message = err && err.message ? err.message : String(err);
    canvas.dataset.error = message;
    console.error("CryoplanView.show failed:", err);
    throw err;
  }
}

// The IIFE bundle exposes only this global.
window.CryoplanView = { show };
