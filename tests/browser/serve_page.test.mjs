// The vlm serve page in a real browser: Debian's headless Chromium driven by playwright-core (never a downloaded
// browser). Starts `vlm serve` on a free port, draws a "1" with mouse events, checks that the letters, prediction and
// bars shown are the API's answer for the pixels the page sent, generates a grid and checks its images load and
// match the API, decodes an edited (invalid, then valid) letter string, and requires a console without errors.
//
//   node tests/browser/serve_page.test.mjs --vlm=build/examples/vlm --run_dir=runs/mnist [--chromium=/usr/bin/chromium]
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function fail(message) {
  console.error(`vlm_serve_browser: FAIL: ${message}`);
  process.exitCode = 1;
  throw new Error(message);
}
function check(condition, message) {
  if (!condition) fail(message);
  console.log(`ok - ${message}`);
}

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = a.match(/^--([^=]+)=(.*)$/);
  if (!m) fail(`unknown argument '${a}' (expected --vlm=PATH --run_dir=DIR [--chromium=PATH])`);
  return [m[1], m[2]];
}));
const vlm = args.vlm, runDir = args.run_dir, chromiumPath = args.chromium || '/usr/bin/chromium';
if (!vlm || !runDir) fail('give --vlm=PATH (the built vlm binary) and --run_dir=DIR (a finished run)');
if (!existsSync(vlm)) fail(`no vlm binary at ${vlm}`);
if (!existsSync(chromiumPath)) fail(`no Chromium at ${chromiumPath}: run scripts/setup.sh (it installs Debian's chromium)`);
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  fail('playwright-core is not installed in tests/browser/node_modules: run scripts/setup.sh ' +
       `(PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser) (${e.message})`);
}

// ---- the server ----------------------------------------------------------------------------------------------
const server = spawn(vlm, ['serve', `--run_dir=${runDir}`, '--port=0', '--threads=1'], { stdio: ['ignore', 'pipe', 'pipe'] });
let serverLog = '';
const serverExit = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
const base = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`vlm serve did not start within 60 s:\n${serverLog}`)), 60000);
  const onData = (chunk) => {
    serverLog += chunk;
    const m = serverLog.match(/listening on (http:\/\/[^\s]+)/);
    if (m) { clearTimeout(timer); resolve(m[1]); }
  };
  server.stdout.on('data', onData);
  server.stderr.on('data', onData);
  serverExit.then(({ code }) => reject(new Error(`vlm serve exited (${code}) before listening:\n${serverLog}`)));
});
console.log(`server at ${base}`);

async function api(path, body) {
  const r = await fetch(new URL(path, base), {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const json = await r.json();
  if (!r.ok) fail(`${path} answered ${r.status}: ${JSON.stringify(json)}`);
  return json;
}

let browser;
try {
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] });
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
  await page.goto(base);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20000 });
  check(true, 'the page loads and reads /api/info');
  const header = await page.locator('#model-info').textContent();
  const runName = runDir.replace(/\/+$/, '').split('/').pop();
  check(header.startsWith(`${runName}: GPT`) && !header.includes('/'),
        `the header names the run (${runName}), not the server's path: "${header}"`);

  // ---- draw a "1": one stroke from top to bottom, slightly slanted, with mouse events ----
  const box = await page.locator('#pad').boundingBox();
  const at = (fx, fy) => [box.x + box.width * fx, box.y + box.height * fy];
  await page.mouse.move(...at(0.55, 0.15));
  await page.mouse.down();
  for (let i = 1; i <= 25; ++i) await page.mouse.move(...at(0.55 - 0.08 * i / 25, 0.15 + 0.7 * i / 25));
  await page.mouse.up();
  await page.waitForFunction(() => window.vlm.classifyCount > 0 && !window.vlm.busy(), null, { timeout: 20000 });
  const shown = await page.evaluate(() => ({
    pixels: window.vlm.lastPixels,
    letters: document.getElementById('letters').textContent,
    prediction: document.getElementById('prediction').textContent,
    bars: [...document.querySelectorAll('#bars .bar')].map((b) => ({
      label: b.dataset.label, value: b.querySelector('.value').textContent, best: b.classList.contains('best'),
    })),
    recon: (() => { const i = document.getElementById('recon'); return { complete: i.complete, width: i.naturalWidth }; })(),
  }));
  const ink = shown.pixels.reduce((a, b) => a + b, 0);
  check(shown.pixels.length === 784 && ink > 5, `the stroke reached the 28x28 input (ink ${ink.toFixed(1)})`);
  const answer = await api('/api/classify', { pixels: shown.pixels });
  check(shown.letters === answer.letters, `the letters shown (${shown.letters}) are the API's for the same pixels`);
  check(shown.prediction.startsWith(`${answer.prediction} (`),
        `the prediction shown (${shown.prediction}) is the API's (${answer.prediction})`);
  check(shown.bars.length === answer.labels.length &&
        shown.bars.every((b, i) => b.label === answer.labels[i] && b.value === answer.probabilities[i].toFixed(3)),
        'one bar per label, with the API\'s probabilities');
  check(shown.bars.filter((b) => b.best).map((b) => b.label).join() === answer.prediction, 'the best bar is the prediction');
  check(shown.recon.complete && shown.recon.width === 28, 'the reconstruction image loads (28x28)');

  // ---- generate a grid for a label ----
  await page.selectOption('#gen-label', '7');
  await page.fill('#gen-n', '8');
  await page.fill('#gen-seed', '4242');
  await page.click('#generate');
  await page.waitForFunction(() => window.vlm.generateCount > 0, null, { timeout: 30000 });
  await page.waitForFunction(() => [...document.querySelectorAll('#grid img')].every((i) => i.complete), null, { timeout: 10000 });
  const grid = await page.evaluate(() => [...document.querySelectorAll('#grid .cell')].map((c) => {
    const img = c.querySelector('img');
    return { letters: img ? img.alt : null, width: img ? img.naturalWidth : 0, text: c.textContent };
  }));
  const expected = await api('/api/generate', { label: '7', n: 8, temperature: 0.8, top_k: 0, seed: 4242 });
  check(grid.length === 8, 'the grid has 8 cells');
  check(grid.every((c, i) => (expected.samples[i].valid ? c.letters === expected.samples[i].letters && c.width === 28
                                                         : c.letters === null)),
        'every generated image loads (28x28) with the letters the API gives for that seed');
  check(grid.every((c, i) => !expected.samples[i].valid || c.text.includes(`reference: ${expected.samples[i].reference.label}`)),
        'the reference classifier\'s verdict is under each image');

  // ---- decode an edited string: an invalid letter is marked, not drawn; a valid one is drawn ----
  await page.fill('#decode-letters', 'AB1DEFGH');
  const invalid = await page.evaluate(() => ({
    bad: [...document.querySelectorAll('#decode-marked .bad')].map((s) => s.textContent),
    hidden: document.getElementById('decoded').hidden,
    error: document.getElementById('decode-error').textContent,
  }));
  check(invalid.bad.join() === '1' && invalid.hidden && invalid.error.includes("'1' at position 3"),
        `an invalid letter is shown as such, with no image (${invalid.error})`);
  await page.fill('#decode-letters', answer.letters);
  await page.waitForFunction(() => { const i = document.getElementById('decoded'); return !i.hidden && i.complete && i.naturalWidth === 28; },
                             null, { timeout: 10000 });
  check(true, 'a valid letter string is decoded into an image');

  check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? ': ' + consoleErrors.join(' | ') : ''}`);
} catch (e) {
  if (!process.exitCode) console.error(`vlm_serve_browser: FAIL: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  server.kill('SIGTERM');
  const { code, signal } = await serverExit;
  if (code !== 0) {
    console.error(`vlm_serve_browser: FAIL: vlm serve exited with ${code ?? signal} after SIGTERM\n${serverLog}`);
    process.exitCode = 1;
  } else {
    console.log('ok - vlm serve stopped cleanly on SIGTERM');
  }
}
