// The compliance console in a real browser: Debian's chromium driven by
// playwright-core. Run by `cargo test` (tests/integration/console/browser.rs),
// which starts the daemon and passes CONSOLE_URL, CONSOLE_PASSWORD, SHOTS_DIR.
// Any console error (a CSP violation is one) or page error fails the run.
import { chromium } from 'playwright-core';

const base = process.env.CONSOLE_URL;
const password = process.env.CONSOLE_PASSWORD;
const shots = process.env.SHOTS_DIR;
const problems = [];
// The refusals a scenario provokes on purpose (the browser logs them as errors).
let expectedStatus = null;
let passed = 0;
let failed = 0;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
});

async function session(who) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('console', (m) => {
    const expected = expectedStatus && m.text().includes(`status of ${expectedStatus}`);
    if ((m.type() === 'error' || m.type() === 'warning') && !expected) {
      problems.push(`${who}: console ${m.type()}: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => problems.push(`${who}: page error: ${e.message}`));
  await page.goto(`${base}/console/search`);
  if (!page.url().endsWith('/console/login')) throw new Error(`${who}: not sent to the login page: ${page.url()}`);
  await page.getByLabel('User').fill(who);
  await page.getByLabel('Password').fill(password);
  await Promise.all([page.waitForURL('**/console/search'), page.getByRole('button', { name: 'Log in' }).click()]);
  return page;
}

async function shot(page, name) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

async function scenario(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAILED - ${name}: ${e.stack || e}`);
  }
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

let bob, alice, carol;

await scenario('log in (a login page, then the search page)', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 700 } });
  const page = await context.newPage();
  await page.goto(`${base}/console/login`);
  await shot(page, 'login');
  await context.close();
  bob = await session('bob');
  alice = await session('alice');
});

await scenario('search a phone number written three ways', async () => {
  for (const phone of ['+1 (555) 123-4567', '555.123.4567', '15551234567']) {
    await bob.goto(`${base}/console/search`);
    await bob.getByLabel('Phone (any format)').fill(phone);
    await bob.getByRole('button', { name: 'Search' }).click();
    const count = await bob.locator('p.count').innerText();
    expect(count.startsWith('1 recording found'), `${phone}: ${count}`);
  }
  expect(bob.url().includes('phone=15551234567'), `the search is in its URL: ${bob.url()}`);
  await shot(bob, 'search');
});

await scenario('open a recording, give a reason, play it and seek', async () => {
  const ranges = [];
  bob.on('request', (r) => {
    if (r.url().endsWith('/audio')) ranges.push(r.headers()['range'] || 'none');
  });
  await bob.locator('table.results tbody a').first().click();
  await bob.getByLabel(/Why are you listening/).fill('QA review, ticket 42');
  await bob.getByRole('button', { name: 'Listen' }).click();
  const audio = bob.locator('audio');
  await audio.waitFor();
  await audio.evaluate((a) => a.play());
  // Polled from here: the page's CSP forbids the eval waitForFunction needs.
  const until = async (what, pred) => {
    for (let i = 0; i < 200; i += 1) {
      if (await audio.evaluate(pred)) return;
      await bob.waitForTimeout(100);
    }
    throw new Error(`the player never ${what}`);
  };
  await until('advanced', (a) => a.currentTime > 0.3);
  await audio.evaluate((a) => { a.currentTime = 2.5; });
  await until('seeked', (a) => a.currentTime >= 2.5 && !a.seeking);
  await audio.evaluate((a) => a.pause());
  expect(ranges.some((r) => r.startsWith('bytes=')), `the player asked for ranges: ${ranges}`);
  await shot(bob, 'recording');
});

await scenario('place a hold after its preview count', async () => {
  await bob.goto(`${base}/console/holds`);
  await bob.getByLabel('Case').fill('LIT-7');
  await bob.getByLabel('Reason').fill('subpoena 2026-17');
  await bob.getByLabel('Phone (any format)').fill('(555) 123-4567');
  await bob.getByRole('button', { name: 'Preview what it covers' }).click();
  const preview = await bob.locator('p.preview').innerText();
  expect(preview.includes('would cover 1 recording (1 on testhost)'), preview);
  await shot(bob, 'hold-preview');
  await bob.getByRole('button', { name: 'Place this hold' }).click();
  expect((await bob.locator('.notice.ok').innerText()).includes('LIT-7'), 'placed');
});

await scenario('export the hold case as a job, follow it, download its zip', async () => {
  await bob.goto(`${base}/console/exports`);
  await bob.getByLabel('Hold case', { exact: true }).fill('LIT-7');
  await bob.getByLabel(/Why are you exporting this case/).fill('production to counsel, LIT-7');
  await bob.getByRole('button', { name: 'Export the case' }).click();
  expect(/\/console\/exports\/\d+$/.test(bob.url()), `the job's page: ${bob.url()}`);
  // The page refreshes itself (no script) until the job is done.
  const download = bob.getByRole('button', { name: /Download the zip/ });
  for (let i = 0; i < 100 && (await download.count()) === 0; i += 1) {
    await bob.waitForTimeout(300);
    await bob.reload();
  }
  const text = await bob.locator('main').innerText();
  expect(text.includes('1 of 1 recordings exported'), text);
  await shot(bob, 'export');
  await bob.getByLabel(/Why are you downloading this export/).fill('counsel asked for the originals');
  const [file] = await Promise.all([bob.waitForEvent('download'), download.click()]);
  expect(/^recvault-export-\d+\.zip$/.test(file.suggestedFilename()), file.suggestedFilename());
  const path = await file.path();
  const { statSync } = await import('node:fs');
  expect(statSync(path).size > 1000, `a zip of ${statSync(path).size} bytes`);
});

await scenario('a listener is refused the holds', async () => {
  carol = await session('carol');
  expectedStatus = 403;
  const r = await carol.goto(`${base}/console/holds`);
  expectedStatus = null;
  expect(r.status() === 403, `status ${r.status()}`);
  expect((await carol.locator('.notice.error').innerText()).includes('compliance role'), 'says why');
  expect((await carol.locator('nav a', { hasText: 'Holds' }).count()) === 0, 'no Holds link for a listener');
});

await scenario('release a hold by two people', async () => {
  await bob.goto(`${base}/console/holds`);
  await bob.getByLabel('Why release it').fill('matter settled');
  await bob.getByRole('button', { name: 'Ask to release' }).click();
  expect((await bob.locator('.notice.ok').innerText()).includes('waits for a second person'), 'waits');
  await bob.goto(`${base}/console/holds`);
  expect((await bob.getByRole('button', { name: 'Confirm' }).count()) === 0, 'the asker cannot confirm');
  await alice.goto(`${base}/console/holds`);
  await shot(alice, 'holds');
  await alice.getByRole('button', { name: 'Confirm' }).click();
  expect((await alice.locator('.notice.ok').innerText()).includes('Released 1 hold'), 'released');
});

await scenario('preview and confirm an erasure by two people, every copy gone', async () => {
  await bob.goto(`${base}/console/erasure`);
  await bob.getByLabel('Request reference (ticket)').fill('DSR-9');
  await bob.getByLabel('Phone (any format)').fill('+1 555 123 4567');
  await bob.getByRole('button', { name: 'Preview the erasure' }).click();
  const preview = await bob.locator('p.preview').innerText();
  expect(preview.startsWith('1 recording(s) to erase'), preview);
  await shot(bob, 'erasure-preview');
  await bob.getByRole('button', { name: 'Ask a second person to confirm this erasure' }).click();
  await alice.goto(`${base}/console/erasure`);
  await alice.getByRole('button', { name: 'Confirm' }).click();
  expect((await alice.locator('.notice.ok').innerText()).includes('confirmed'), 'confirmed');
  let text = '';
  for (let i = 0; i < 60; i += 1) {
    await alice.goto(`${base}/console/erasure/progress?request=DSR-9`);
    text = await alice.locator('main').innerText();
    if (text.includes('complete: every copy is gone')) break;
    await alice.waitForTimeout(1000);
  }
  expect(text.includes('complete: every copy is gone'), text);
  await shot(alice, 'erasure-progress');
});

await scenario('audit trail and overview', async () => {
  await alice.goto(`${base}/console/audit`);
  expect((await alice.locator('.notice.ok').first().innerText()).includes('verified'), 'chain verified');
  const audit = await alice.locator('table').innerText();
  expect(audit.includes('hold-add') && audit.includes('hold-release') && audit.includes('erase'), audit);
  expect(audit.includes('export') && audit.includes('download'), `the export and its download: ${audit}`);
  await shot(alice, 'audit');
  await alice.goto(`${base}/console/overview`);
  await shot(alice, 'overview');
  await carol.setViewportSize({ width: 390, height: 844 });
  await carol.goto(`${base}/console/search?phone=5551234567`);
  await shot(carol, 'search-phone');
});

await browser.close();
for (const p of problems) console.log(`problem: ${p}`);
if (problems.length > 0) failed += 1;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
