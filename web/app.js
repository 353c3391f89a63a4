// The vlm serve page: draw -> classify (live), generate a grid, decode edited letters. Talks only to /api/*.
'use strict';

const $ = (id) => document.getElementById(id);
// State the browser test reads: the pixels last sent and the answer shown for them.
window.vlm = { info: null, lastPixels: null, lastClassify: null, classifyCount: 0, generateCount: 0, decodeCount: 0 };

function showError(message) { $('error').textContent = message || ''; }

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`${path}: ${json.error}${json.expected ? ' (expected ' + json.expected + ')' : ''}`);
  return json;
}

// ---- drawing --------------------------------------------------------------------------------------------------
const pad = $('pad');
const padCtx = pad.getContext('2d', { willReadFrequently: true });
let drawing = false, last = null;

function channels() { return window.vlm.info ? (window.vlm.info.image_channels || 1) : 1; }

function clearPad() {
  padCtx.fillStyle = '#000';
  padCtx.fillRect(0, 0, pad.width, pad.height);
}

function padPoint(event) {
  const r = pad.getBoundingClientRect();
  return { x: (event.clientX - r.left) * pad.width / r.width, y: (event.clientY - r.top) * pad.height / r.height };
}

function strokeTo(p) {
  // A colour run (RGB items) draws in the chosen ink; a grey one in white.
  padCtx.strokeStyle = channels() === 3 ? $('ink').value : '#fff';
  padCtx.lineWidth = pad.width / 12;
  padCtx.lineCap = 'round';
  padCtx.lineJoin = 'round';
  padCtx.beginPath();
  padCtx.moveTo(last.x, last.y);
  padCtx.lineTo(p.x, p.y);
  padCtx.stroke();
  last = p;
}

pad.addEventListener('pointerdown', (e) => {
  drawing = true;
  pad.setPointerCapture(e.pointerId);
  last = padPoint(e);
  strokeTo({ x: last.x + 0.01, y: last.y });  // a dot for a tap
  scheduleClassify();
});
pad.addEventListener('pointermove', (e) => {
  if (!drawing) return;
  strokeTo(padPoint(e));
  scheduleClassify();
});
for (const type of ['pointerup', 'pointercancel']) pad.addEventListener(type, () => { drawing = false; scheduleClassify(); });
$('clear').addEventListener('click', () => { clearPad(); scheduleClassify(); });

// MNIST's own preprocessing: the ink's bounding box scaled into 20x20, then shifted so that its centre of mass sits
// at the centre of the 28x28 image.
function toModelPixels() {
  const size = window.vlm.info ? window.vlm.info.image_size : 28;
  const data = padCtx.getImageData(0, 0, pad.width, pad.height).data;
  let x0 = pad.width, y0 = pad.height, x1 = -1, y1 = -1;
  for (let y = 0; y < pad.height; ++y)
    for (let x = 0; x < pad.width; ++x)
      if (Math.max(data[(y * pad.width + x) * 4], data[(y * pad.width + x) * 4 + 1], data[(y * pad.width + x) * 4 + 2]) > 0) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  const small = document.createElement('canvas');
  small.width = small.height = size;
  const ctx = small.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, size, size);
  if (x1 >= 0) {
    const w = x1 - x0 + 1, h = y1 - y0 + 1, box = size * 20 / 28, scale = box / Math.max(w, h);
    const place = (dx, dy) => {
      ctx.fillRect(0, 0, size, size);
      ctx.imageSmoothingEnabled = true;
      ctx.imageSmoothingQuality = 'high';
      ctx.drawImage(pad, x0, y0, w, h, (size - w * scale) / 2 + dx, (size - h * scale) / 2 + dy, w * scale, h * scale);
    };
    place(0, 0);
    const g = ctx.getImageData(0, 0, size, size).data;
    let mass = 0, mx = 0, my = 0;
    for (let i = 0; i < size * size; ++i) { const v = Math.max(g[i * 4], g[i * 4 + 1], g[i * 4 + 2]); mass += v; mx += v * (i % size); my += v * Math.floor(i / size); }
    if (mass > 0) place(Math.round((size - 1) / 2 - mx / mass), Math.round((size - 1) / 2 - my / mass));
  }
  const g = ctx.getImageData(0, 0, size, size);
  $('input28').getContext('2d').putImageData(g, 0, 0);
  // (C, H, W), channel by channel, as the server reads them.
  const c = channels(), pixels = new Array(c * size * size);
  for (let k = 0; k < c; ++k)
    for (let i = 0; i < size * size; ++i) pixels[k * size * size + i] = g.data[i * 4 + k] / 255;
  return pixels;
}

// One classify request in flight at a time; drawing meanwhile asks for one more when it returns.
let inFlight = false, dirty = false;
window.vlm.busy = () => inFlight || dirty;
function scheduleClassify() {
  dirty = true;
  if (!inFlight) requestAnimationFrame(classifyNow);
}

async function classifyNow() {
  if (inFlight || !dirty) return;
  dirty = false;
  inFlight = true;
  const pixels = toModelPixels();
  try {
    const r = await api('/api/classify', { pixels, reconstruction: true });
    window.vlm.lastPixels = pixels;
    window.vlm.lastClassify = r;
    showClassification(r);
    window.vlm.classifyCount += 1;
    showError('');
  } catch (err) {
    showError(err.message);
  } finally {
    inFlight = false;
    if (dirty) requestAnimationFrame(classifyNow);
  }
}

function showClassification(r) {
  $('letters').textContent = r.letters;
  $('prediction').textContent = `${r.prediction} (p = ${r.probability.toFixed(3)})`;
  $('recon').src = r.reconstruction;
  const bars = $('bars');
  bars.replaceChildren();
  r.labels.forEach((label, i) => {
    const p = r.probabilities[i];
    const row = document.createElement('div');
    row.className = 'bar' + (label === r.prediction ? ' best' : '');
    row.dataset.label = label;
    row.innerHTML = `<span class="name"></span><span class="track"><span class="fill"></span></span><span class="value"></span>`;
    row.querySelector('.name').textContent = label;
    row.querySelector('.fill').style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector('.fill').style.display = 'block';
    row.querySelector('.value').textContent = p.toFixed(3);
    bars.appendChild(row);
  });
  $('decode-letters').value = r.letters;
  decodeNow();
}

// ---- generation -----------------------------------------------------------------------------------------------
$('generate').addEventListener('click', async () => {
  const body = {
    label: $('gen-label').value,
    n: Number($('gen-n').value),
    temperature: Number($('gen-temperature').value),
    top_k: Number($('gen-top-k').value),
    seed: Number($('gen-seed').value),
  };
  $('gen-status').textContent = 'generating…';
  try {
    const r = await api('/api/generate', body);
    const grid = $('grid');
    grid.replaceChildren();
    let recognised = 0;
    for (const s of r.samples) {
      const cell = document.createElement('div');
      cell.className = 'cell';
      if (s.valid) {
        const img = document.createElement('img');
        img.src = s.image;
        img.alt = s.letters;
        cell.appendChild(img);
        const letters = document.createElement('div');
        letters.className = 'mono';
        letters.textContent = s.letters;
        cell.appendChild(letters);
        const verdict = document.createElement('div');
        const ok = s.reference.label === r.label;
        recognised += ok;
        verdict.className = ok ? 'ok' : 'wrong';
        verdict.textContent = `reference: ${s.reference.label} (${s.reference.probability.toFixed(2)})`;
        cell.appendChild(verdict);
        cell.addEventListener('click', () => { $('decode-letters').value = s.letters; decodeNow(); });
      } else {
        cell.textContent = `invalid: "${s.completion}"`;
      }
      grid.appendChild(cell);
    }
    $('gen-status').textContent =
      `${r.samples.length} images of ${r.label}; the reference classifier recognises ${recognised} (seed ${r.seed})`;
    window.vlm.generateCount += 1;
  } catch (err) {
    $('gen-status').textContent = err.message;
  }
});

// ---- decoding -------------------------------------------------------------------------------------------------
// Letters outside the tokenizer's alphabet are marked here and never sent: an invalid string has no image.
async function decodeNow() {
  const info = window.vlm.info;
  if (!info) return;
  const letters = $('decode-letters').value;
  const marked = $('decode-marked');
  marked.replaceChildren();
  const bad = [];
  [...letters].forEach((c, i) => {
    const span = document.createElement('span');
    span.textContent = c;
    if (!info.tokenizer.alphabet.includes(c)) { span.className = 'bad'; bad.push(`'${c}' at position ${i + 1}`); }
    marked.appendChild(span);
  });
  const want = info.tokenizer.letters_per_image;
  let problem = '';
  if (bad.length) problem = `not letters of the tokenizer (${info.tokenizer.alphabet}): ${bad.join(', ')}`;
  else if (letters.length !== want) problem = `${letters.length} letters; an image is ${want}`;
  $('decode-error').textContent = problem;
  if (problem) { $('decoded').hidden = true; window.vlm.decodeCount += 1; return; }
  try {
    const r = await api('/api/decode', { letters });
    $('decoded').src = r.image;
    $('decoded').hidden = false;
  } catch (err) {
    $('decode-error').textContent = err.message;
    $('decoded').hidden = true;
  }
  window.vlm.decodeCount += 1;
}
$('decode-letters').addEventListener('input', decodeNow);

// ---- start ----------------------------------------------------------------------------------------------------
(async () => {
  clearPad();
  try {
    const info = await api('/api/info');
    window.vlm.info = info;
    $('ink-label').hidden = channels() !== 3;
    $('model-info').textContent =
      `${info.name}: GPT ${info.gpt.options.n_layer}x${info.gpt.options.n_embd}, ` +
      `${info.tokenizer.letters_per_image} letters of ${info.tokenizer.alphabet.length} per image; ` +
      `vlm ${info.versions.vlm}, LibTorch ${info.versions.libtorch}`;
    const select = $('gen-label');
    for (const label of info.labels) {
      const option = document.createElement('option');
      option.value = option.textContent = label;
      select.appendChild(option);
    }
    $('gen-top-k').max = info.limits.max_top_k;
    $('gen-n').max = info.limits.max_n;
    document.body.dataset.ready = 'true';
  } catch (err) {
    showError(err.message);
  }
})();
